use std::process::ExitCode;

use topology::{topology, Consumed, Produced, Serdes, StreamsBuilder};

#[topology(application_id = "echo")]
fn echo(builder: &mut StreamsBuilder) {
    builder
        .stream("in", Consumed::with(Serdes::unit(), Serdes::string()))
        .to("out", Produced::with(Serdes::unit(), Serdes::string()));
}

fn main_with(args: &[&str]) -> ExitCode {
    topology::app::main_from::<EchoApp, _, _>(std::iter::once("echo").chain(args.iter().copied()))
}

#[test]
fn the_runner_runs_describes_and_reports_errors_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "hello\nworld\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let state = dir.path().join("state");
    let ok = main_with(&[
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        "--input",
        &format!("in={}", input.display()),
        "--output",
        &format!("out={}", out.display()),
    ]);
    assert_eq!(ok, ExitCode::SUCCESS);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
    assert_eq!(main_with(&["describe", "--format", "dot"]), ExitCode::SUCCESS);
    // A runtime error (missing file) is exit 1; a usage error is exit 2.
    let missing = main_with(&["run", "--state-dir", state.to_str().unwrap(), "--input", "in=/nonexistent"]);
    assert_eq!(missing, ExitCode::from(1));
    assert_eq!(main_with(&["run", "--commit-interval", "soon"]), ExitCode::from(2));
}
