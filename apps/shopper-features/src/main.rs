fn main() {
    eprintln!("shopper-features: not implemented yet (see the project's issues)");
    std::process::exit(2);
}
