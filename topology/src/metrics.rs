//! Operations endpoints: Prometheus metrics (`/metrics`), liveness (`/healthz`) and readiness
//! (`/readyz`), served by [`serve`] for a run's [`AppMetrics`] (`run --metrics-addr HOST:PORT`).
//!
//! The runtimes count records in and out per topic as they go, and fold in the tasks' own figures
//! (processed, late and dead-lettered records, cache hits and misses, store sizes) at every commit.
//!
//! ```
//! let m = topology::metrics::AppMetrics::new("demo");
//! m.record_in("clicks", 3);
//! assert!(m.render().contains("topology_records_in_total{application=\"demo\",topic=\"clicks\"} 3"));
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// A run's metrics and readiness, shared by the runtime and the HTTP endpoints.
pub struct AppMetrics {
    application: String,
    registry: Registry,
    records_in: Family<Labels, Counter>,
    records_out: Family<Labels, Counter>,
    processed: Counter,
    late: Family<Labels, Counter>,
    dead_lettered: Counter,
    commits: Counter,
    commit_failures: Counter,
    commit_seconds: Histogram,
    process_seconds: Histogram,
    cache_hits: Family<Labels, Counter>,
    cache_misses: Family<Labels, Counter>,
    store_entries: Family<Labels, Gauge>,
    tasks: Gauge,
    tasks_restoring: Gauge,
    restored_records: Counter,
    rebalances: Counter,
    consumer_lag: Family<Labels, Gauge>,
    stream_time_lag_ms: Gauge,
    redis_outages: Counter,
    ready: AtomicBool,
    /// Totals last folded in, to turn the tasks' running totals into counter increments.
    seen: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for AppMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppMetrics").field("application", &self.application).finish()
    }
}

impl AppMetrics {
    /// Metrics of application `application` (a label on every series).
    pub fn new(application: &str) -> Arc<AppMetrics> {
        let mut registry = Registry::with_prefix_and_labels(
            "topology",
            [(std::borrow::Cow::Borrowed("application"), std::borrow::Cow::Owned(application.to_string()))].into_iter(),
        );
        let m = AppMetrics {
            application: application.to_string(),
            records_in: Family::default(),
            records_out: Family::default(),
            processed: Counter::default(),
            late: Family::default(),
            dead_lettered: Counter::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            process_seconds: Histogram::new(exponential_buckets(0.000_001, 4.0, 12)),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            store_entries: Family::default(),
            tasks: Gauge::default(),
            tasks_restoring: Gauge::default(),
            restored_records: Counter::default(),
            rebalances: Counter::default(),
            consumer_lag: Family::default(),
            stream_time_lag_ms: Gauge::default(),
            redis_outages: Counter::default(),
            ready: AtomicBool::new(false),
            seen: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register("records_in", "Records read, per input topic", m.records_in.clone());
        registry.register("records_out", "Records written, per output topic", m.records_out.clone());
        registry.register("records_processed", "Records processed by the tasks", m.processed.clone());
        registry.register("late_records", "Records refused as late, per node", m.late.clone());
        registry.register("dead_lettered_records", "Records sent to the dead-letter topic", m.dead_lettered.clone());
        registry.register("commits", "Commits", m.commits.clone());
        registry.register("commit_failures", "Commits that failed", m.commit_failures.clone());
        registry.register("commit_seconds", "Commit duration", m.commit_seconds.clone());
        registry.register(
            "process_seconds",
            "Time to process one record through its task, output routed (one record in 64 is timed)",
            m.process_seconds.clone(),
        );
        registry.register("cache_hits", "Write-back cache hits, per store", m.cache_hits.clone());
        registry.register("cache_misses", "Write-back cache misses, per store", m.cache_misses.clone());
        registry.register("store_entries", "Approximate entries, per store", m.store_entries.clone());
        registry.register("tasks", "Open tasks", m.tasks.clone());
        registry.register("tasks_restoring", "Tasks restoring their state", m.tasks_restoring.clone());
        registry.register("restored_records", "Changelog records restored", m.restored_records.clone());
        registry.register("rebalances", "Consumer group rebalances", m.rebalances.clone());
        registry.register("consumer_lag", "Records behind the end, per topic and partition", m.consumer_lag.clone());
        registry.register(
            "stream_time_lag_ms",
            "Wall-clock time minus the highest stream time, ms (processing latency for live input)",
            m.stream_time_lag_ms.clone(),
        );
        registry.register("redis_outages", "Times Redis became unavailable", m.redis_outages.clone());
        Arc::new(AppMetrics { registry, ..m })
    }

    fn topic(topic: &str) -> Labels {
        vec![("topic".into(), topic.into())]
    }

    /// `n` records read from `topic`.
    pub fn record_in(&self, topic: &str, n: u64) {
        self.records_in.get_or_create(&Self::topic(topic)).inc_by(n);
    }
    /// `n` records written to `topic`.
    pub fn record_out(&self, topic: &str, n: u64) {
        self.records_out.get_or_create(&Self::topic(topic)).inc_by(n);
    }
    /// A commit that took `seconds` (or failed).
    pub fn commit(&self, seconds: f64, ok: bool) {
        if ok {
            self.commits.inc();
            self.commit_seconds.observe(seconds);
        } else {
            self.commit_failures.inc();
        }
    }
    /// Processing times of sampled records, seconds.
    pub(crate) fn observe_process_seconds(&self, samples: &[f64]) {
        for &s in samples {
            self.process_seconds.observe(s);
        }
    }
    /// A rebalance was applied.
    pub fn rebalance(&self) {
        self.rebalances.inc();
    }
    /// Open and restoring tasks.
    pub fn set_tasks(&self, open: usize, restoring: usize) {
        self.tasks.set(open as i64);
        self.tasks_restoring.set(restoring as i64);
    }
    /// Records behind the end of `topic`/`partition`.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        let labels = vec![("topic".into(), topic.into()), ("partition".into(), partition.to_string())];
        self.consumer_lag.get_or_create(&labels).set(lag);
    }
    /// Wall clock minus stream time, ms.
    pub fn set_stream_time_lag(&self, ms: i64) {
        self.stream_time_lag_ms.set(ms);
    }
    /// Folds in a running total of one source (a task's processed records, …): the counter grows by
    /// what is new. A total below the last one is a source that started again from zero (a task that
    /// moved away and came back): all of it is new, as Prometheus reads counter resets.
    fn fold(&self, key: String, total: u64, counter: &Counter) {
        let mut seen = self.seen.lock().expect("metrics lock");
        let last = seen.entry(key).or_insert(0);
        counter.inc_by(if total >= *last { total - *last } else { total });
        *last = total;
    }
    /// One task's totals at a commit (folded per task, so tasks that come and go with rebalances
    /// neither hide nor repeat records).
    pub(crate) fn observe_task(&self, task: &str, m: &crate::task::TaskMetrics) {
        self.fold(format!("{task}/processed"), m.processed, &self.processed);
        self.fold(format!("{task}/dead_lettered"), m.dead_lettered, &self.dead_lettered);
        for (node, n) in &m.late {
            let counter = self.late.get_or_create(&vec![("node".into(), node.clone())]);
            self.fold(format!("{task}/late/{node}"), *n, &counter);
        }
    }
    /// One task's cache figures for a store at a commit.
    pub(crate) fn observe_cache(&self, task: &str, store: &str, hits: u64, misses: u64) {
        let labels = vec![("store".into(), store.to_string())];
        self.fold(format!("{task}/hits/{store}"), hits, &self.cache_hits.get_or_create(&labels));
        self.fold(format!("{task}/misses/{store}"), misses, &self.cache_misses.get_or_create(&labels));
    }
    /// A store's entries over all open tasks.
    pub(crate) fn set_store_entries(&self, store: &str, entries: u64) {
        self.store_entries.get_or_create(&vec![("store".into(), store.to_string())]).set(entries as i64);
    }
    /// Records read and written per topic so far (running totals).
    pub(crate) fn observe_io(
        &self,
        records_in: &std::collections::BTreeMap<String, u64>,
        records_out: &std::collections::BTreeMap<String, u64>,
    ) {
        for (topic, n) in records_in {
            self.fold(format!("in/{topic}"), *n, &self.records_in.get_or_create(&Self::topic(topic)));
        }
        for (topic, n) in records_out {
            self.fold(format!("out/{topic}"), *n, &self.records_out.get_or_create(&Self::topic(topic)));
        }
    }
    /// Changelog records one task restored (a running total).
    pub(crate) fn observe_restored(&self, task: &str, total: u64) {
        self.fold(format!("{task}/restored"), total, &self.restored_records);
    }
    /// Redis outages so far (a running total).
    pub(crate) fn observe_redis_outages(&self, total: u64) {
        self.fold("redis_outages".into(), total, &self.redis_outages);
    }
    /// Whether every assigned task is restored and running.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    /// See [`set_ready`](Self::set_ready).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    /// The Prometheus (OpenMetrics) text of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The running endpoint server; dropping it does not stop it (it lives as long as the process).
#[derive(Debug)]
pub struct MetricsServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

/// Serves `/metrics`, `/healthz` (200 while the process runs) and `/readyz` (200 once every assigned
/// task is restored and running, 503 before) on `addr`, from a background thread.
pub fn serve(addr: &str, metrics: Arc<AppMetrics>) -> std::io::Result<MetricsServer> {
    let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("the metrics endpoint needs an IP address"))?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for request in server.incoming_requests() {
            let (status, body, content_type) = match request.url() {
                "/metrics" => (200, metrics.render(), "application/openmetrics-text; version=1.0.0; charset=utf-8"),
                "/healthz" => (200, "ok\n".to_string(), "text/plain"),
                "/readyz" if metrics.is_ready() => (200, "ready\n".to_string(), "text/plain"),
                "/readyz" => (503, "not ready: tasks are restoring or not assigned yet\n".to_string(), "text/plain"),
                _ => (404, "not found: /metrics, /healthz, /readyz\n".to_string(), "text/plain"),
            };
            let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
            let _ =
                request.respond(tiny_http::Response::from_string(body).with_status_code(status).with_header(header));
        }
    })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(MetricsServer { addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed(m: &AppMetrics) -> u64 {
        let line = m.render().lines().find(|l| l.starts_with("topology_records_processed_total")).unwrap().to_string();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Tasks move between instances: a task's totals restart from zero when it comes back, and the
    /// application's counter still counts every record once.
    #[test]
    fn counters_follow_tasks_that_leave_and_come_back() {
        let m = AppMetrics::new("t");
        let task = |n| crate::task::TaskMetrics { processed: n, ..Default::default() };
        m.observe_task("0_0", &task(100));
        m.observe_task("0_1", &task(60));
        assert_eq!(processed(&m), 160);
        // 0_1 moves away; 0_0 goes on.
        m.observe_task("0_0", &task(150));
        assert_eq!(processed(&m), 210);
        // 0_1 comes back, counting from zero again: its 5 new records count.
        m.observe_task("0_1", &task(5));
        m.observe_task("0_0", &task(150));
        assert_eq!(processed(&m), 215);
        m.observe_task("0_1", &task(25));
        assert_eq!(processed(&m), 235);
    }
}
