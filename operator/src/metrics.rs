//! Prometheus metrics of the operator, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of per-outcome reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of membership action counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// Planner action kind (`add_learner`, `promote`, ...).
    pub action: String,
    /// `ok` or `error`.
    pub result: String,
}

/// All operator metrics, registered in one [`Registry`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations by outcome.
    pub reconciles: Family<OutcomeLabels, Counter>,
    /// Reconciliation wall time.
    pub reconcile_duration: Histogram,
    /// Actions executed (membership changes, scaling, restarts, volume deletions).
    pub actions: Family<ActionLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `seshat_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seshat_operator");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register("reconciles", "Reconciliations of SeshatClusters by result", reconciles.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Wall time of one reconciliation", reconcile_duration.clone());
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register("actions", "Planner actions executed, by kind and result", actions.clone());
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        Self { registry, reconciles, reconcile_duration, actions, leader }
    }

    /// Records one reconciliation.
    pub fn observe_reconcile(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles.get_or_create(&OutcomeLabels { result: result.into() }).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Records one executed action.
    pub fn observe_action(&self, action: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.actions.get_or_create(&ActionLabels { action: action.into(), result: result.into() }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("metrics encode");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.observe_reconcile(true, Duration::from_millis(12));
        m.observe_action("add_learner", true);
        m.leader.set(1);
        let text = m.render();
        assert!(text.contains("seshat_operator_reconciles_total{result=\"ok\"} 1"), "{text}");
        assert!(text.contains("seshat_operator_actions_total{action=\"add_learner\",result=\"ok\"} 1"), "{text}");
        assert!(text.contains("seshat_operator_reconcile_duration_seconds_count 1"), "{text}");
        assert!(text.contains("seshat_operator_leader 1"), "{text}");
    }
}
