fn main() {
    eprintln!("attribution: not implemented yet (see the project's issues)");
    std::process::exit(2);
}
