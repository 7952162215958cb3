//! Prometheus metrics (`GET /metrics`).
//!
//! One process-wide registry: the runtime (plugin call latency), the
//! intake, the workers and the scheduler all report into it, the way the
//! `metrics` facade's global recorder works, without threading a handle
//! through every call. Gauges that mirror the database (queue depth,
//! breakers) are set when scraped.
//!
//! | name | type | labels | unit |
//! |---|---|---|---|
//! | `guard_webhooks_total` | counter | platform, result | webhooks |
//! | `guard_events_processed_total` | counter | result (done, retried, dead) | events |
//! | `guard_detections_total` | counter | category | diagnoses |
//! | `guard_heals_total` | counter | strategy, outcome | heals |
//! | `guard_reruns_total` | counter | result (done, failed) | API re-runs |
//! | `guard_catch_up_queued_total` | counter | platform | failed jobs queued by catch-up (`github-app`: missed webhook deliveries GitHub was asked to redeliver) |
//! | `guard_catch_up_errors_total` | counter | platform | watched items whose listing failed |
//! | `guard_decision_seconds` | histogram | — | seconds from webhook to decision |
//! | `guard_plugin_call_seconds` | histogram | plugin, call | seconds |
//! | `guard_plugin_failures_total` | counter | plugin | contained failures |
//! | `guard_queue_depth` | gauge | — | events waiting |
//! | `guard_dead_letters` | gauge | — | events given up |
//! | `guard_scheduled_reruns` | gauge | — | re-runs waiting for their time |
//! | `guard_breakers` | gauge | state (closed, open, half-open) | breakers |

use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Label pairs.
pub type Labels = Vec<(String, String)>;

/// Calls of one plugin, for the dashboard (Prometheus gets the histograms).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PluginCalls {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (trap, limit, timeout).
    pub failures: u64,
    /// Total time, seconds.
    pub total_secs: f64,
    /// Slowest call, seconds.
    pub max_secs: f64,
}

/// Every metric guard exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    plugin_totals: std::sync::Mutex<std::collections::BTreeMap<String, PluginCalls>>,
    /// Webhooks by platform and result.
    pub webhooks: Family<Labels, Counter>,
    /// Events processed by result.
    pub events: Family<Labels, Counter>,
    /// Diagnoses by category.
    pub detections: Family<Labels, Counter>,
    /// Heals by strategy and outcome.
    pub heals: Family<Labels, Counter>,
    /// Scheduled re-runs fired, by result.
    pub reruns: Family<Labels, Counter>,
    /// Failed jobs queued by catch-up, by platform.
    pub catch_up_queued: Family<Labels, Counter>,
    /// Catch-up listings that failed, by platform.
    pub catch_up_errors: Family<Labels, Counter>,
    /// Webhook-to-decision latency.
    pub decision: Histogram,
    /// Plugin call latency.
    pub plugin_calls: Family<Labels, Histogram>,
    /// Contained plugin failures.
    pub plugin_failures: Family<Labels, Counter>,
    /// Events waiting.
    pub queue_depth: Gauge,
    /// Dead letters.
    pub dead_letters: Gauge,
    /// Scheduled re-runs waiting.
    pub scheduled: Gauge,
    /// Breakers by state.
    pub breakers: Family<Labels, Gauge>,
}

fn plugin_histogram() -> Histogram {
    // 100 µs … ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("guard");
        let webhooks = Family::<Labels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhooks received, by platform and result",
            webhooks.clone(),
        );
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "events_processed",
            "Queued events processed, by result",
            events.clone(),
        );
        let detections = Family::<Labels, Counter>::default();
        registry.register(
            "detections",
            "Failed jobs diagnosed, by category",
            detections.clone(),
        );
        let heals = Family::<Labels, Counter>::default();
        registry.register("heals", "Heals, by strategy and outcome", heals.clone());
        let reruns = Family::<Labels, Counter>::default();
        registry.register(
            "reruns",
            "Scheduled re-runs sent to a platform, by result",
            reruns.clone(),
        );
        let catch_up_queued = Family::<Labels, Counter>::default();
        registry.register(
            "catch_up_queued",
            "Failed jobs found by catch-up after downtime and queued, by platform",
            catch_up_queued.clone(),
        );
        let catch_up_errors = Family::<Labels, Counter>::default();
        registry.register(
            "catch_up_errors",
            "Watched repositories, projects or jobs whose catch-up listing failed, by platform",
            catch_up_errors.clone(),
        );
        let decision = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        registry.register_with_unit(
            "decision",
            "Time from accepting a webhook to recording guard's decision",
            Unit::Seconds,
            decision.clone(),
        );
        let plugin_calls = Family::<Labels, Histogram>::new_with_constructor(
            plugin_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "plugin_call",
            "Plugin calls (a scan or a heal, instantiation included), by plugin and call",
            Unit::Seconds,
            plugin_calls.clone(),
        );
        let plugin_failures = Family::<Labels, Counter>::default();
        registry.register(
            "plugin_failures",
            "Contained plugin failures (traps, timeouts, limits)",
            plugin_failures.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Events waiting in the intake queue",
            queue_depth.clone(),
        );
        let dead_letters = Gauge::default();
        registry.register(
            "dead_letters",
            "Events given up after repeated failures",
            dead_letters.clone(),
        );
        let scheduled = Gauge::default();
        registry.register(
            "scheduled_reruns",
            "Re-runs waiting for their backoff to pass",
            scheduled.clone(),
        );
        let breakers = Family::<Labels, Gauge>::default();
        registry.register("breakers", "Circuit breakers, by state", breakers.clone());
        Metrics {
            registry,
            plugin_totals: std::sync::Mutex::default(),
            webhooks,
            events,
            detections,
            heals,
            reruns,
            catch_up_queued,
            catch_up_errors,
            decision,
            plugin_calls,
            plugin_failures,
            queue_depth,
            dead_letters,
            scheduled,
            breakers,
        }
    }

    /// Records one plugin call.
    pub fn plugin_call(&self, plugin: &str, call: &str, secs: f64, ok: bool) {
        self.plugin_calls
            .get_or_create(&labels(&[("plugin", plugin), ("call", call)]))
            .observe(secs);
        if !ok {
            self.plugin_failures
                .get_or_create(&labels(&[("plugin", plugin)]))
                .inc();
        }
        let mut totals = match self.plugin_totals.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let t = totals.entry(plugin.to_string()).or_default();
        t.calls += 1;
        t.failures += u64::from(!ok);
        t.total_secs += secs;
        t.max_secs = t.max_secs.max(secs);
    }

    /// Per-plugin call totals since start-up.
    pub fn plugin_totals(&self) -> std::collections::BTreeMap<String, PluginCalls> {
        match self.plugin_totals.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Label pairs from string slices.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
