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

const SIGNAL_CHILD: &str = "TOPOLOGY_SIGNAL_CHILD_DIR";

/// SIGTERM while reading a live stdin: the run stops, commits what it read, and exits 0.
#[test]
fn sigterm_stops_consuming_commits_and_exits_zero() {
    if let Ok(dir) = std::env::var(SIGNAL_CHILD) {
        let out = format!("out={dir}/out.jsonl");
        let state = format!("{dir}/state");
        std::process::exit(
            if main_with(&["run", "--state-dir", &state, "--input", "in=-", "--output", &out]) == ExitCode::SUCCESS {
                0
            } else {
                1
            },
        );
    }
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "app::sigterm_stops_consuming_commits_and_exits_zero", "--test-threads=1"])
        .env(SIGNAL_CHILD, dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "one\ntwo\nthree").unwrap();
    stdin.flush().unwrap();
    // stdin stays open: a live stream that has gone quiet.
    let out = dir.path().join("out.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline && std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 3 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    drop(stdin);
    assert!(exit.success(), "exit status {exit}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
    assert!(dir.path().join("state/echo/commit.json").exists(), "the stop committed");
}

/// GET `path` from `addr`: (status code, body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[test]
fn a_run_serves_its_metrics_liveness_and_readiness() {
    use topology::metrics::{serve, AppMetrics};
    use topology::{run_embedded, Application, EmbeddedConfig, Input, Output};

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let lines: Vec<String> = (0..200).map(|n| format!("line {n}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let metrics = AppMetrics::new("echo");
    let server = serve("127.0.0.1:0", metrics.clone()).unwrap();
    assert_eq!(http_get(server.addr, "/healthz").0, 200);
    assert_eq!(http_get(server.addr, "/readyz").0, 503, "not ready before the tasks are open");
    let mut cfg = EmbeddedConfig::new("echo", dir.path().join("state"));
    cfg.inputs.push(("in".into(), Input::File(input)));
    cfg.outputs.push(("out".into(), Output::File(dir.path().join("out.jsonl"))));
    cfg.metrics = Some(metrics.clone());
    run_embedded(&EchoApp::topology().unwrap(), &cfg).unwrap();
    assert_eq!(http_get(server.addr, "/readyz").0, 200);
    let (status, body) = http_get(server.addr, "/metrics");
    assert_eq!(status, 200);
    for line in [
        r#"topology_records_in_total{application="echo",topic="in"} 200"#,
        r#"topology_records_out_total{application="echo",topic="out"} 200"#,
        r#"topology_records_processed_total{application="echo"} 200"#,
        // One record in 64 is timed through its task.
        r#"topology_process_seconds_count{application="echo"} 4"#,
        r#"topology_tasks{application="echo"} 1"#,
    ] {
        assert!(body.lines().any(|l| l == line), "no `{line}` in\n{body}");
    }
    assert!(body.contains("topology_commit_seconds_count"), "{body}");
    assert_eq!(http_get(server.addr, "/nope").0, 404);
}

const SECRETS_CHILD: &str = "TOPOLOGY_SECRETS_CHILD_DIR";

/// A run configured with a SASL password and a Redis password, against a cluster and a Redis that are
/// down (so it logs retries and outages at debug level): not a log line carries either password, and
/// off a terminal every line is a JSON object.
#[test]
fn no_log_line_carries_a_kafka_or_redis_password() {
    if let Ok(dir) = std::env::var(SECRETS_CHILD) {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (bootstrap, redis) = (format!("127.0.0.1:{closed}"), format!("redis://:redis-pw-0451@127.0.0.1:{closed}/"));
        std::process::exit(i32::from(
            main_with(&[
                "run",
                "--state-dir",
                &dir,
                "--bootstrap-servers",
                &bootstrap,
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=PLAIN",
                "-X",
                "sasl.username=alice",
                "-X",
                "sasl.password=sasl-pw-0451",
                "--redis",
                &redis,
            ]) != ExitCode::SUCCESS,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "app::no_log_line_carries_a_kafka_or_redis_password", "--test-threads=1", "--nocapture"])
        .env(SECRETS_CHILD, dir.path())
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "the run logged (JSON off a terminal):\n{log}");
    assert!(lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{log}");
    assert!(log.contains("sasl") || log.contains("unreachable") || log.contains("cluster"), "{log}");
    for secret in ["sasl-pw-0451", "redis-pw-0451"] {
        assert!(!log.contains(secret), "`{secret}` leaked:\n{log}");
    }
}

/// Every series the Grafana dashboard queries is one the runtime exports.
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana/topology-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Families show once they have a series: a small stateful run with a late record fills them.
    use topology::{Consumed, Grouped, Materialized, TimeWindows, Windowed};
    let mut b = StreamsBuilder::new();
    b.stream(
        "in",
        Consumed::with(Serdes::unit(), Serdes::string())
            .with_timestamp_extractor(|_, v: &String, _| v.parse::<i64>().map_err(|e| e.to_string())),
    )
    .group_by_key(Grouped::new())
    .windowed_by(TimeWindows::of(std::time::Duration::from_millis(10)))
    .count(Materialized::as_("counts"))
    .to_stream()
    .to("out", Produced::with(Serdes::json::<Windowed<()>>(), Serdes::optional(Serdes::json::<u64>())));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "5\n100\n1\n").unwrap();
    let metrics = topology::metrics::AppMetrics::new("x");
    let mut cfg = topology::EmbeddedConfig::new("x", dir.path().join("state"));
    cfg.inputs.push(("in".into(), topology::Input::File(dir.path().join("in.txt"))));
    cfg.outputs.push(("out".into(), topology::Output::File(dir.path().join("out.jsonl"))));
    cfg.metrics = Some(metrics.clone());
    topology::run_embedded(&b.build().unwrap(), &cfg).unwrap();
    metrics.set_lag("in", 0, 0); // the Kafka runtime's
    metrics.rebalance();
    let exported = metrics.render();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("topology_") {
                let name: String = expr[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let base =
                    ["_total", "_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
                assert!(exported.contains(&format!("# TYPE {base} ")), "the dashboard queries `{name}`, not exported");
                queried += 1;
            }
        }
    }
    assert!(queried >= 15, "{queried}");
}

/// TLS to Kafka is compiled in (rdkafka's `ssl` feature): a run configured for SSL starts (and waits
/// for the unreachable cluster) instead of failing on an unsupported setting, then stops cleanly.
#[test]
fn kafka_tls_settings_pass_through() {
    use topology::{run_kafka, Application, KafkaConfig};

    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = KafkaConfig::new("echo", &format!("127.0.0.1:{closed}"), dir.path());
    cfg.properties = vec![
        ("security.protocol".into(), "SASL_SSL".into()),
        ("sasl.mechanism".into(), "SCRAM-SHA-512".into()),
        ("sasl.username".into(), "alice".into()),
        ("sasl.password".into(), "secret".into()),
        ("ssl.endpoint.identification.algorithm".into(), "https".into()),
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    cfg.stop = Some(stop.clone());
    let run = std::thread::spawn(move || run_kafka(&EchoApp::topology().unwrap(), &cfg));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!run.is_finished(), "the run should be waiting for the cluster, not failing");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = run.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
}
