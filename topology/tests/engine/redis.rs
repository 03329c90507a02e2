//! The Redis sink against a real `redis-server` on a free loopback port (started and stopped here).

use std::time::{Duration, Instant};

use topology::sink::redis::{RedisCommand, RedisSink};
pub(crate) use topology::testing::RedisServer;

fn set(key: &str, value: &str, ttl: Option<u64>) -> RedisCommand {
    RedisCommand::Set { key: key.into(), value: value.into(), ttl_s: ttl }
}

#[test]
fn commands_are_written_with_ttls_lists_and_publishes() {
    let server = RedisServer::start(None, None);
    let mut conn = server.client(&server.url());
    let mut pubsub_conn = server.client(&server.url());
    let mut pubsub = pubsub_conn.as_pubsub();
    pubsub.subscribe("alerts").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    let mut sink = RedisSink::open(&server.url(), 1000).unwrap();
    sink.push(set("user:1:score", "0.9", Some(600)));
    sink.push(set("plain", "v", None));
    sink.push(set("gone", "x", None));
    sink.push(RedisCommand::Del { key: "gone".into() });
    for n in 0..5 {
        sink.push(RedisCommand::PushCapped {
            list: "recent".into(),
            value: format!("a{n}"),
            max_len: 3,
            ttl_s: 86_400,
        });
    }
    sink.push(RedisCommand::Publish { channel: "alerts".into(), message: "{\"id\":1}".into() });
    assert!(sink.flush());
    assert_eq!(sink.metrics().commands_written, 10);

    let v: String = redis::cmd("GET").arg("user:1:score").query(&mut conn).unwrap();
    assert_eq!(v, "0.9");
    let ttl: i64 = redis::cmd("TTL").arg("user:1:score").query(&mut conn).unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
    let ttl: i64 = redis::cmd("TTL").arg("plain").query(&mut conn).unwrap();
    assert_eq!(ttl, -1);
    let exists: i64 = redis::cmd("EXISTS").arg("gone").query(&mut conn).unwrap();
    assert_eq!(exists, 0);
    let list: Vec<String> = redis::cmd("LRANGE").arg("recent").arg(0).arg(-1).query(&mut conn).unwrap();
    assert_eq!(list, vec!["a4", "a3", "a2"]);
    let ttl: i64 = redis::cmd("TTL").arg("recent").query(&mut conn).unwrap();
    assert!(ttl > 86_000);
    let msg = pubsub.get_message().unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "{\"id\":1}");
}

#[test]
fn while_redis_is_down_commands_stay_buffered_and_are_written_when_it_returns() {
    let server = RedisServer::start(None, None);
    let port = server.port;
    let mut sink = RedisSink::open(&server.url(), 10_000).unwrap();
    sink.push(set("before", "1", None));
    assert!(sink.flush());
    drop(server); // Redis goes away
    for n in 0..100 {
        sink.push(set(&format!("k{n}"), &n.to_string(), Some(600)));
    }
    for _ in 0..1000 {
        assert!(!sink.flush());
    }
    assert_eq!(sink.buffered(), 100, "nothing dropped");
    assert_eq!(sink.metrics().outages, 1, "one outage, however many failed flushes");
    assert_eq!(sink.metrics().failed_flushes, 1, "no reconnect storm: the next attempt waits for the backoff");
    std::thread::sleep(Duration::from_millis(60));
    assert!(!sink.flush());
    assert_eq!(sink.metrics().failed_flushes, 2, "after the backoff, another attempt");
    let server = RedisServer::start(Some(port), None); // back (empty: no persistence)
    std::thread::sleep(Duration::from_millis(110)); // the (doubled) backoff
    assert!(sink.flush());
    assert_eq!(sink.buffered(), 0);
    let mut conn = server.client(&server.url());
    let n: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(n, 100);
    let v: String = redis::cmd("GET").arg("k42").query(&mut conn).unwrap();
    assert_eq!(v, "42");
}

#[test]
fn a_full_buffer_blocks_the_task_until_redis_is_back() {
    let server = RedisServer::start(None, None);
    let (port, url) = (server.port, server.url());
    drop(server);
    let mut sink = RedisSink::open(&url, 10).unwrap();
    for n in 0..10 {
        sink.push(set(&format!("k{n}"), "v", None));
    }
    // Bring Redis back after a while, from another thread; push #11 must wait for it.
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        RedisServer::start(Some(port), None)
    });
    let started = Instant::now();
    sink.push(set("k10", "v", None));
    assert!(started.elapsed() >= Duration::from_millis(300), "push returned without waiting");
    let server = restarter.join().unwrap();
    assert!(sink.flush());
    let mut conn = server.client(&server.url());
    let n: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(n, 11);
    assert!(sink.metrics().blocked_ms >= 300);
}

#[test]
fn auth_comes_from_the_url_and_the_password_never_shows_in_errors() {
    let server = RedisServer::start(None, Some("s3cret-pw"));
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{}/", server.port);
    let mut sink = RedisSink::open(&wrong, 10).unwrap();
    sink.push(set("k", "v", None));
    let err = sink.flush_within(Duration::from_millis(200)).unwrap_err().to_string();
    assert!(!err.contains("wrong-pw") && !err.contains("s3cret"), "{err}");
    let right = format!("redis://:s3cret-pw@127.0.0.1:{}/", server.port);
    let mut sink = RedisSink::open(&right, 10).unwrap();
    sink.push(set("k", "v", None));
    sink.flush_within(Duration::from_secs(5)).unwrap();
    let mut conn = server.client(&right);
    let v: String = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
    assert_eq!(v, "v");
    let bad = RedisSink::open("redis://:hunter2@[::1", 10).unwrap_err().to_string();
    assert!(!bad.contains("hunter2"), "{bad}");
}

/// `rediss://` with a private CA and mutual TLS: written over TLS (read back on the plain port); without
/// the CA or without a client certificate the connection is refused, with a clear error; certificates
/// for a plain `redis://` URL are a configuration error.
#[test]
fn tls_with_a_private_ca_and_a_client_certificate() {
    use topology::sink::redis::RedisTls;
    let dir = tempfile::tempdir().unwrap();
    let (server, tls_port, files) = RedisServer::start_tls(dir.path());
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let tls = RedisTls {
        ca_cert: Some(files.ca_cert.clone()),
        client_cert: Some(files.client_cert.clone()),
        client_key: Some(files.client_key.clone()),
    };
    let mut sink = RedisSink::open_tls(&url, &tls, 10).unwrap();
    sink.push(set("over-tls", "yes", Some(60)));
    sink.flush_within(Duration::from_secs(5)).unwrap();
    let mut conn = server.client(&server.url());
    let v: String = redis::cmd("GET").arg("over-tls").query(&mut conn).unwrap();
    assert_eq!(v, "yes");

    let without_ca = RedisTls { ca_cert: None, ..tls.clone() };
    let without_client_cert = RedisTls { client_cert: None, client_key: None, ..tls.clone() };
    for (case, tls) in [("no CA", without_ca), ("no client certificate", without_client_cert)] {
        let mut sink = RedisSink::open_tls(&url, &tls, 10).unwrap();
        sink.push(set("refused", "x", None));
        let err = sink.flush_within(Duration::from_millis(300)).unwrap_err().to_string();
        assert!(err.starts_with("redis unavailable"), "{case}: {err}");
    }
    let exists: i64 = redis::cmd("EXISTS").arg("refused").query(&mut conn).unwrap();
    assert_eq!(exists, 0);

    let plain = RedisSink::open_tls(&server.url(), &tls, 10).unwrap_err().to_string();
    assert!(plain.contains("not rediss://"), "{plain}");
    let half = RedisTls { client_key: None, ..tls.clone() };
    let err = RedisSink::open_tls(&url, &half, 10).unwrap_err().to_string();
    assert!(err.contains("needs its key"), "{err}");
}

/// An app whose output records are mirrored to Redis as `SETEX word:<w> <length> 600`.
#[topology::topology(application_id = "lengths", redis = lengths_to_redis)]
fn lengths(builder: &mut topology::StreamsBuilder) {
    use topology::{Consumed, Produced, Serdes};
    builder
        .stream("words", Consumed::with(Serdes::unit(), Serdes::string()))
        .map(|_, w: String| (w.clone(), w.len() as i64))
        .to("lengths", Produced::with(Serdes::string(), Serdes::json::<i64>()));
}

fn lengths_to_redis(topic: &str, record: &topology::RawRecord) -> Vec<RedisCommand> {
    let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).to_string();
    let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).to_string();
    assert_eq!(topic, "lengths");
    vec![set(&format!("word:{key}"), &value, Some(600))]
}

#[test]
fn run_with_redis_writes_the_apps_commands() {
    let server = RedisServer::start(None, None);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    std::fs::write(&input, "alpha\nbe\ngamma\n").unwrap();
    let state = dir.path().join("state");
    let code = topology::app::main_from::<LengthsApp, _, _>([
        "lengths",
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        "--input",
        &format!("words={}", input.display()),
        "--redis",
        &server.url(),
    ]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let mut conn = server.client(&server.url());
    let v: String = redis::cmd("GET").arg("word:gamma").query(&mut conn).unwrap();
    assert_eq!(v, "5");
    let n: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(n, 3);
    let ttl: i64 = redis::cmd("TTL").arg("word:be").query(&mut conn).unwrap();
    assert!((590..=600).contains(&ttl));
}
