//! Prometheus metrics, served as OpenMetrics text on `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels naming the controller (virtualservice or realserver).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

/// Labels naming a watched kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

/// Labels of the status write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: &'static str,
    /// "applied" or "unchanged".
    pub result: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// Every metric of the operator.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ControllerLabel, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    pub in_flight: Family<ControllerLabel, Gauge>,
    pub status_writes: Family<WriteLabels, Counter>,
    pub events: Counter,
    pub leader: Gauge,
    /// Shared with [`crate::stores::Unreadable`], which sets it.
    pub unreadable: Family<KindLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lvs_operator");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration =
            Family::<ControllerLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let in_flight = Family::<ControllerLabel, Gauge>::default();
        let status_writes = Family::<WriteLabels, Counter>::default();
        let events = Counter::default();
        let leader = Gauge::default();
        let unreadable = Family::<KindLabel, Gauge>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by error kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now",
            in_flight.clone(),
        );
        registry.register(
            "status_writes",
            "Status computations, by whether a write was needed",
            status_writes.clone(),
        );
        registry.register("events", "Kubernetes Events published", events.clone());
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            leader.clone(),
        );
        registry.register(
            "unreadable_objects",
            "VirtualServices and RealServers this operator cannot read (a field it does not know, as from a newer CRD), left out of the analysis",
            unreadable.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            in_flight,
            status_writes,
            events,
            leader,
            unreadable,
        }
    }

    /// Counts a reconcile and tracks it while in flight; the returned guard
    /// records the duration when dropped.
    pub fn start(self: &Arc<Self>, controller: &'static str) -> ReconcileTimer {
        let label = ControllerLabel { controller };
        self.reconciles.get_or_create(&label).inc();
        self.in_flight.get_or_create(&label).inc();
        ReconcileTimer {
            metrics: Arc::clone(self),
            label,
            start: Instant::now(),
        }
    }

    pub fn error(&self, controller: &'static str, error: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { controller, error })
            .inc();
    }

    pub fn status_write(&self, kind: &'static str, applied: bool) {
        let result = if applied { "applied" } else { "unchanged" };
        self.status_writes
            .get_or_create(&WriteLabels { kind, result })
            .inc();
    }

    /// The exposition (OpenMetrics text, served as
    /// [`lvs_runtime::metrics::CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        lvs_runtime::metrics::encode(&self.registry)
    }
}

/// Ends an in-flight reconcile when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    label: ControllerLabel,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&self.label)
            .observe(self.start.elapsed().as_secs_f64());
        self.metrics.in_flight.get_or_create(&self.label).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histogram_and_gauges() {
        let m = Arc::new(Metrics::new());
        {
            let _t = m.start("virtualservice");
            assert!(
                m.encode()
                    .contains("lvs_operator_reconciles_in_flight{controller=\"virtualservice\"} 1")
            );
        }
        m.error("virtualservice", "conflict");
        m.status_write("VirtualService", false);
        m.leader.set(1);
        let text = m.encode();
        for want in [
            "lvs_operator_reconciles_total{controller=\"virtualservice\"} 1",
            "lvs_operator_reconcile_errors_total{controller=\"virtualservice\",error=\"conflict\"} 1",
            "lvs_operator_reconcile_duration_seconds_count{controller=\"virtualservice\"} 1",
            "lvs_operator_reconciles_in_flight{controller=\"virtualservice\"} 0",
            "lvs_operator_status_writes_total{kind=\"VirtualService\",result=\"unchanged\"} 1",
            "lvs_operator_leader 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
