//! The root docker-compose.yml, checked where no Docker engine runs: its `topics` service's topics are
//! created on a local broker, then each app service's binary runs with exactly the compose file's
//! `command` and `environment` (hosts `kafka:9092` and `redis:6379` pointed at a local tansu and
//! redis-server, the state dir at a temporary one, the metrics port at a free one) until its
//! `/readyz` answers 200, and stops cleanly on SIGTERM.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use topology::testing::{free_port, Broker, Build, RedisServer};

const CHILD: &str = "COMPOSE_SERVICE_CHILD";

fn compose() -> serde_yaml::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// In the child: the service's binary (the app's runner) with the given environment and arguments.
fn run_child(spec: &str) -> ! {
    let (service, args): (String, Vec<String>) = serde_json::from_str(spec).unwrap();
    let argv = std::iter::once(service.clone()).chain(args);
    let code = match service.as_str() {
        "shopper-features" => topology::app::main_from::<shopper_features::ShopperFeaturesApp, _, _>(argv),
        "fraud" => topology::app::main_from::<fraud::FraudApp, _, _>(argv),
        "attribution" => topology::app::main_from::<attribution::AttributionApp, _, _>(argv),
        other => panic!("unknown service {other}"),
    };
    std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 });
}

/// GET `path` on the local port: the response text, empty when nothing answers.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = write!(s, "GET {path} HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

fn ready(port: u16) -> bool {
    let text = get(port, "/readyz");
    text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200")
}

#[test]
fn every_app_service_starts_with_the_compose_files_command_and_environment() {
    if let Ok(spec) = std::env::var(CHILD) {
        run_child(&spec);
    }
    let compose = compose();
    let services = &compose["services"];
    let broker = Broker::start(Build::CratesIo);
    let redis = RedisServer::start(None, None);
    // The `topics` service's script: one `create NAME PARTITIONS [CONFIG]` line per topic.
    let script = services["topics"]["command"][0].as_str().unwrap();
    let mut created = 0;
    for line in script.lines().map(str::trim).filter(|l| l.starts_with("create ")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        broker.create_topic(parts[1], parts[2].parse().unwrap());
        created += 1;
    }
    assert_eq!(created, 6);
    for service in ["shopper-features", "fraud", "attribution"] {
        let s = &services[service];
        assert_eq!(s["build"]["dockerfile"].as_str(), Some(format!("apps/{service}/Dockerfile").as_str()));
        let args: Vec<String> =
            s["command"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        let state = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut env = BTreeMap::new();
        for (k, v) in s["environment"].as_mapping().unwrap() {
            let (k, v) = (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string());
            let v = match k.as_str() {
                "TOPOLOGY_BOOTSTRAP_SERVERS" => v.replace("kafka:9092", &broker.bootstrap()),
                "TOPOLOGY_REDIS_URL" => v.replace("redis://redis:6379/", &redis.url()),
                "TOPOLOGY_STATE_DIR" => state.path().display().to_string(),
                "TOPOLOGY_METRICS_ADDR" => format!("127.0.0.1:{port}"),
                _ => v,
            };
            env.insert(k, v);
        }
        assert!(env.contains_key("TOPOLOGY_METRICS_ADDR"), "{service} serves its endpoints");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "compose::every_app_service_starts_with_the_compose_files_command_and_environment"])
            .args(["--test-threads=1", "--nocapture"])
            .env(CHILD, serde_json::to_string(&(service, &args)).unwrap())
            .envs(&env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready(port) {
            assert!(child.try_wait().unwrap().is_none(), "{service} exited before it was ready");
            assert!(Instant::now() < deadline, "{service} never became ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        if service == "fraud" {
            // Consumer lag comes from librdkafka's statistics, every 5 s, once a partition has a
            // position: give it a transaction to read.
            crate::produce(
                &broker,
                "transactions",
                &[r#"{"transaction_id":"t1","user_id":"u1","amount":5.0,"payment_method":"card","timestamp":"2026-01-01T00:00:00Z"}"#.to_string()],
                |v| v["user_id"].as_str().unwrap().to_string(),
                "timestamp",
            );
            while !get(port, "/metrics").contains("topology_consumer_lag{") {
                assert!(Instant::now() < deadline, "{service}: no consumer lag on /metrics");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let exit = child.wait().unwrap();
        assert!(exit.success(), "{service}: {exit}");
    }
}
