//! The app runner shared by every app: `describe` prints the topology, `run` runs it. An app's
//! `main.rs` is one line: `fn main() { topology::app::main::<MyApp>() }` with `MyApp` from `#[topology]`.
//!
//! Every option can also come from an environment variable (listed in `--help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::runtime::{run_embedded, run_kafka, EmbeddedConfig, Input, InputFormat, KafkaConfig, Output};
use crate::Application;

#[derive(Debug, Parser)]
#[command(about = "Runs or describes a topology application")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Guarantee {
    /// Commit every commit interval; after a crash, output since the last commit may repeat.
    AtLeastOnce,
    /// Commit at deterministic input positions; after a crash, outputs and state roll back to the
    /// last commit, so a rerun ends with the same output files as an uninterrupted run.
    ExactlyOnce,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LineFormat {
    /// Each line is one record in the topic's wire format (the value; no key).
    Wire,
    /// Each line is a {"key", "value", "timestamp"} envelope, as outputs are written.
    Envelope,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the topology.
    Describe {
        /// Text (Kafka Streams' grammar), Mermaid or Graphviz DOT.
        #[arg(long, value_enum, default_value = "text", env = "TOPOLOGY_DESCRIBE_FORMAT")]
        format: Format,
    },
    /// Runs the application: on the embedded runtime over files until their end, or, with
    /// `--bootstrap-servers`, on a Kafka cluster until stopped.
    Run(Box<RunArgs>),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Application id (defaults to the app's own).
    #[arg(long, env = "TOPOLOGY_APPLICATION_ID")]
    application_id: Option<String>,
    /// State directory.
    #[arg(long, env = "TOPOLOGY_STATE_DIR", default_value = "state")]
    state_dir: PathBuf,
    /// An input topic: TOPIC=PATH (`-` = stdin). Repeatable.
    #[arg(long = "input", value_name = "TOPIC=PATH", env = "TOPOLOGY_INPUT", value_delimiter = ',')]
    inputs: Vec<String>,
    /// An output topic: TOPIC=PATH (`-` = stdout). Repeatable. Other outputs go under the state dir.
    #[arg(long = "output", value_name = "TOPIC=PATH", env = "TOPOLOGY_OUTPUT", value_delimiter = ',')]
    outputs: Vec<String>,
    /// How input lines are read.
    #[arg(long, value_enum, default_value = "wire", env = "TOPOLOGY_INPUT_FORMAT")]
    input_format: LineFormat,
    /// How often state, outputs and input positions are committed (e.g. 500ms, 1s, 1m).
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "TOPOLOGY_COMMIT_INTERVAL")]
    commit_interval: Duration,
    /// Write-back cache per store, bytes (0 disables it).
    #[arg(long, default_value_t = 10 << 20, env = "TOPOLOGY_CACHE_MAX_BYTES")]
    cache_max_bytes: usize,
    /// Emit the final results of open windows at the end of the input.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "TOPOLOGY_FINAL_FLUSH")]
    final_flush: bool,
    /// Live input: once a task has had no records for this long (e.g. 30s), its stream time moves on
    /// with the wall clock, so windows of quiet partitions still close. Off by default; ignored when
    /// every input is a file.
    #[arg(long, value_parser = parse_duration, env = "TOPOLOGY_IDLE_ADVANCE")]
    idle_advance: Option<Duration>,
    /// Serves Prometheus metrics on /metrics, liveness on /healthz and readiness on /readyz at this
    /// address (e.g. 0.0.0.0:9464).
    #[arg(long, env = "TOPOLOGY_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Partitions per topic (tasks per sub-topology).
    #[arg(long, default_value_t = 1, env = "TOPOLOGY_PARTITIONS")]
    partitions: u32,
    /// Processing guarantee.
    #[arg(long, value_enum, default_value = "at-least-once", env = "TOPOLOGY_GUARANTEE")]
    guarantee: Guarantee,
    /// Also write the app's Redis commands (SETEX, PUBLISH, …) to this Redis (AUTH in the URL: redis://user:password@host:6379/0).
    #[arg(long, env = "TOPOLOGY_REDIS_URL", hide_env_values = true)]
    redis: Option<String>,
    /// For a rediss:// (TLS) URL: a CA certificate to trust besides the system's (PEM).
    #[arg(long, env = "TOPOLOGY_REDIS_CA_CERT", requires = "redis")]
    redis_ca_cert: Option<PathBuf>,
    /// For a rediss:// URL: a client certificate for mutual TLS (PEM; with --redis-client-key).
    #[arg(long, env = "TOPOLOGY_REDIS_CLIENT_CERT", requires_all = ["redis", "redis_client_key"])]
    redis_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "TOPOLOGY_REDIS_CLIENT_KEY", requires_all = ["redis", "redis_client_cert"])]
    redis_client_key: Option<PathBuf>,
    /// Under exactly-once on the embedded runtime: input records between commits.
    #[arg(long, default_value_t = 10_000, env = "TOPOLOGY_COMMIT_EVERY_RECORDS")]
    commit_every_records: u64,
    /// Runs on this Kafka cluster (a consumer group named by the application id) instead of files.
    #[arg(long, env = "TOPOLOGY_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// A Kafka client property for every client, as kcat's: `-X security.protocol=SASL_SSL`. Repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "TOPOLOGY_KAFKA_PROPERTIES", value_delimiter = ',')]
    kafka_properties: Vec<String>,
}

/// A spinner line on the terminal: records, records/s, stream time.
fn progress_bar() -> crate::ProgressFn {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    crate::ProgressFn(std::sync::Arc::new(move |p: &crate::Progress| {
        let rate = p.records as f64 / (p.elapsed_ms.max(1) as f64 / 1000.0);
        let time = p.stream_time.map_or_else(|| "-".to_string(), |t| format!("{t}"));
        bar.set_message(format!("{} records, {rate:.0} records/s, stream time {time}", p.records));
        bar.tick();
        if p.done {
            bar.finish_and_clear();
        }
    }))
}

/// SIGINT or SIGTERM sets the returned flag (the run stops, commits, closes, exits 0); a second one
/// exits at once.
fn stop_on_signals() -> std::io::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the first signal left it: set → exit now.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// Logs through tracing to stderr: human-readable on a terminal, one JSON object per line otherwise
/// (for log collectors). `RUST_LOG` filters (default `warn,topology=info`). Secrets never reach a log
/// line: Kafka properties are not logged, and Redis URLs only without their password.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,topology=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        builder.try_init()
    } else {
        builder.json().with_ansi(false).try_init()
    };
}

/// Parses `500ms`, `2s`, `1m` or plain milliseconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 500ms, 2s or 1m"))?;
    match unit {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit `{unit}` in `{s}`; use ms, s or m")),
    }
}

fn split_pair(s: &str, what: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((t, p)) if !t.is_empty() && !p.is_empty() => Ok((t.to_string(), p.to_string())),
        _ => Err(format!("--{what} takes TOPIC=PATH, got `{s}`")),
    }
}

/// Parses an app's own subcommand (`gen`, `eval`, …) from the process arguments (`args[1]` is the
/// subcommand): the parsed arguments, or the exit code after clap printed help (0) or a usage error (2)
/// — as the shared `describe`/`run` commands do.
pub fn subcommand<P: Parser>(args: &[String]) -> Result<P, ExitCode> {
    P::try_parse_from(args.iter().skip(1)).map_err(|e| {
        let _ = e.print();
        ExitCode::from(if e.use_stderr() { 2 } else { 0 })
    })
}

/// Parses the command line (and environment) and runs `A`. Exits 0 on success, 1 on a runtime error
/// (printed as one line), 2 on bad usage.
pub fn main<A: Application>() -> ExitCode {
    main_from::<A, _, _>(std::env::args_os())
}

/// Like [`main`] with explicit arguments (the first is the program name).
pub fn main_from<A, I, T>(args: I) -> ExitCode
where
    A: Application,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run::<A>(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run<A: Application>(cli: Cli) -> Result<(), String> {
    let topology = A::topology().map_err(|e| e.to_string())?;
    match cli.command {
        Command::Describe { format } => {
            let d = topology.describe();
            match format {
                Format::Text => print!("{d}"),
                Format::Mermaid => print!("{}", d.mermaid()),
                Format::Dot => print!("{}", d.dot()),
            }
            Ok(())
        }
        Command::Run(args) => {
            let RunArgs {
                application_id,
                state_dir,
                inputs,
                outputs,
                input_format,
                commit_interval,
                cache_max_bytes,
                final_flush,
                idle_advance,
                metrics_addr,
                partitions,
                guarantee,
                commit_every_records,
                redis,
                redis_ca_cert,
                redis_client_cert,
                redis_client_key,
                bootstrap_servers,
                kafka_properties,
            } = *args;
            init_logging();
            let tls = crate::sink::redis::RedisTls {
                ca_cert: redis_ca_cert,
                client_cert: redis_client_cert,
                client_key: redis_client_key,
            };
            let redis = redis.map(|url| crate::runtime::RedisOutput {
                tls,
                url,
                mapper: std::sync::Arc::new(|topic: &str, record: &crate::RawRecord| A::redis_commands(topic, record)),
                max_buffered: 100_000,
            });
            let stop = stop_on_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
            let application_id = application_id.as_deref().unwrap_or(A::ID);
            let metrics = match metrics_addr {
                Some(addr) => {
                    let m = crate::metrics::AppMetrics::new(application_id);
                    crate::metrics::serve(&addr, m.clone()).map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
                    Some(m)
                }
                None => None,
            };
            if let Some(bootstrap) = bootstrap_servers {
                if !inputs.is_empty() || !outputs.is_empty() {
                    return Err("--input/--output are for the embedded runtime; on Kafka, topics are topics".into());
                }
                let mut cfg = KafkaConfig::new(application_id, &bootstrap, state_dir);
                for p in &kafka_properties {
                    let (k, v) = p.split_once('=').ok_or_else(|| format!("-X takes KEY=VALUE, got `{p}`"))?;
                    cfg.properties.push((k.to_string(), v.to_string()));
                }
                cfg.exactly_once = matches!(guarantee, Guarantee::ExactlyOnce);
                cfg.commit_interval = commit_interval;
                cfg.cache_max_bytes = cache_max_bytes;
                cfg.redis = redis;
                cfg.stop = Some(stop);
                cfg.idle_advance = idle_advance;
                cfg.metrics = metrics;
                let summary = run_kafka(&topology, &cfg).map_err(|e| e.to_string())?;
                eprintln!(
                    "stopped: read {:?}, wrote {:?}, commits {}",
                    summary.records_in, summary.records_out, summary.commits
                );
                return Ok(());
            }
            let mut cfg = EmbeddedConfig::new(application_id, state_dir);
            for i in &inputs {
                let (topic, path) = split_pair(i, "input")?;
                cfg.inputs.push((topic, if path == "-" { Input::Stdin } else { Input::File(path.into()) }));
            }
            for o in &outputs {
                let (topic, path) = split_pair(o, "output")?;
                cfg.outputs.push((topic, if path == "-" { Output::Stdout } else { Output::File(path.into()) }));
            }
            cfg.input_format = match input_format {
                LineFormat::Wire => InputFormat::Wire,
                LineFormat::Envelope => InputFormat::Envelope,
            };
            cfg.commit_interval = commit_interval;
            cfg.cache_max_bytes = cache_max_bytes;
            cfg.final_flush = final_flush;
            cfg.partitions = partitions.max(1);
            cfg.exactly_once = matches!(guarantee, Guarantee::ExactlyOnce);
            cfg.commit_every_records = commit_every_records.max(1);
            cfg.redis = redis;
            cfg.idle_advance = idle_advance;
            cfg.metrics = metrics;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                cfg.progress = Some(progress_bar());
            }
            cfg.stop = Some(stop);
            let summary = run_embedded(&topology, &cfg).map_err(|e| e.to_string())?;
            eprintln!(
                "{}: read {:?}, wrote {:?}, dead-lettered {}, late {}, commits {}",
                if summary.stopped { "stopped" } else { "done" },
                summary.records_in,
                summary.records_out,
                summary.dead_lettered,
                summary.late,
                summary.commits
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
