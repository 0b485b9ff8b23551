//! Prometheus metrics: a `prometheus-client` registry, as in the operator,
//! served as OpenMetrics text (`lvs_runtime::metrics`).
//!
//! Most series are registry metrics. Two collectors write, at scrape time,
//! what a registry metric cannot hold:
//! - [`Latest`]: gauges that have no value until their first event (the
//!   last sync, whether the configuration is valid, whether the watches are
//!   synced), and the age of the last sync as of the scrape;
//! - [`KernelStats`]: the kernel counters of the owned services. They can be
//!   tens of thousands of series, so they are written straight from the
//!   snapshot the last full sync published, never copied into registry
//!   metrics per service: the snapshot is the only copy.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use lvs_runtime::metrics::Escaped;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use lvs_ipvs::{ServiceEntry, Stats};

use crate::kernel::ServiceLabel;
use crate::report::SyncReport;

/// Per-destination series are exported up to this many destinations by
/// default: eight series each, so a 200,000-destination table would be 1.6
/// million series, more than a scrape or a Prometheus should carry.
pub const DEFAULT_MAX_DESTINATIONS: usize = 10_000;

/// The kernel counters of the owned services, each with the VirtualService
/// it belongs to, as the last full sync read them.
pub type StatsSnapshot = Vec<(ServiceEntry, Option<String>)>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    file: Escaped<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipRoleLabel {
    vip: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabel {
    virtual_service: Escaped<String>,
    kind: &'static str,
}

/// The drift counter keeps at most this many VirtualServices apart; drift
/// of any other is counted under [`OTHER_VIRTUAL_SERVICES`], so a node
/// whose table is edited at random cannot grow the series without bound.
pub const MAX_DRIFT_SERIES_SERVICES: usize = 500;

/// The `virtual_service` label of drift beyond [`MAX_DRIFT_SERIES_SERVICES`].
pub const OTHER_VIRTUAL_SERVICES: &str = "(other)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabel {
    #[prometheus(flatten)]
    check: CheckLabel,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    r#type: &'static str,
}

/// Probe latency buckets: 1 ms to about 8 s.
fn probe_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// The agent's metrics, shared by the sync loop, the sources and the HTTP
/// server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    syncs: Family<ModeLabel, Counter>,
    sync_errors: Family<KindLabel, Counter>,
    ops: Family<KindLabel, Counter>,
    virtual_services: Family<StateLabel, Gauge>,
    config_errors: Family<FileLabel, Counter>,
    config_loads: Counter,
    watch_errors: Family<KindLabel, Counter>,
    report_writes: Family<ResultLabel, Counter>,
    snapshots: Family<ResultLabel, Counter>,
    drift_repaired: Family<DriftLabel, Counter>,
    /// The VirtualServices the drift counter has series of.
    drift_services: Mutex<std::collections::HashSet<String>>,
    vip_role: Family<VipRoleLabel, Gauge>,
    ha_takeovers: Counter,
    ha_releases: Counter,
    probes: Family<ProbeLabel, Counter>,
    probe_seconds: Family<CheckLabel, Histogram, fn() -> Histogram>,
    latest: Arc<Latest>,
    stats: Arc<KernelStats>,
    health: Arc<HealthStates>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DESTINATIONS)
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Metrics {
    /// Metrics that export per-destination series while the owned table has
    /// at most `max_destinations` destinations (per-service series always).
    pub fn new(max_destinations: usize) -> Self {
        let mut registry = Registry::with_prefix("lvs_agent");
        let m = Metrics {
            syncs: Family::default(),
            sync_errors: Family::default(),
            ops: Family::default(),
            virtual_services: Family::default(),
            config_errors: Family::default(),
            config_loads: Counter::default(),
            watch_errors: Family::default(),
            report_writes: Family::default(),
            snapshots: Family::default(),
            drift_repaired: Family::default(),
            drift_services: Mutex::default(),
            vip_role: Family::default(),
            ha_takeovers: Counter::default(),
            ha_releases: Counter::default(),
            probes: Family::default(),
            probe_seconds: Family::new_with_constructor(probe_histogram),
            latest: Arc::default(),
            stats: Arc::new(KernelStats {
                snapshot: Mutex::default(),
                max_destinations,
            }),
            health: Arc::new(HealthStates {
                checks: OnceLock::new(),
                max_destinations,
            }),
            registry: Registry::default(),
        };
        // The registry ends each help text with a full stop.
        registry.register(
            "syncs",
            "Syncs run, by mode (full reads the kernel first)",
            m.syncs.clone(),
        );
        registry.register(
            "sync_errors",
            "Problems found by syncs, by kind",
            m.sync_errors.clone(),
        );
        registry.register("ops", "Kernel writes, by kind", m.ops.clone());
        registry.register(
            "virtual_services",
            "VirtualServices this node directs, by programmed state",
            m.virtual_services.clone(),
        );
        registry.register(
            "config_errors",
            "Configuration files that could not be used, by file",
            m.config_errors.clone(),
        );
        registry.register(
            "config_loads",
            "Configuration reads without error",
            m.config_loads.clone(),
        );
        registry.register(
            "watch_errors",
            "Failed watches or lists of the API server, by kind",
            m.watch_errors.clone(),
        );
        registry.register(
            "snapshots",
            "LvsSnapshot requests answered with the live IPVS table (answered), or answered with an error or not written (failed)",
            m.snapshots.clone(),
        );
        registry.register(
            "report_writes",
            "Writes of the node's LvsNode, by result",
            m.report_writes.clone(),
        );
        registry.register(
            "drift_repaired",
            "Kernel objects of this agent changed by someone else and repaired by a resync, by VirtualService and kind",
            m.drift_repaired.clone(),
        );
        registry.register(
            "vip_role",
            "Director high availability: 1 for this node's role per VIP",
            m.vip_role.clone(),
        );
        registry.register(
            "ha_takeovers",
            "VIPs this node started holding as the active director",
            m.ha_takeovers.clone(),
        );
        registry.register(
            "ha_releases",
            "VIPs this node stopped holding as the active director",
            m.ha_releases.clone(),
        );
        registry.register(
            "health_probes",
            "Health check probes, by check type and result",
            m.probes.clone(),
        );
        registry.register(
            "health_probe_duration_seconds",
            "How long health check probes took (a timeout counts its full time), by check type",
            m.probe_seconds.clone(),
        );
        registry.register_collector(Box::new(m.latest.clone()));
        registry.register_collector(Box::new(m.stats.clone()));
        registry.register_collector(Box::new(m.health.clone()));
        for mode in ["full", "incremental"] {
            let _ = m.syncs.get_or_create(&ModeLabel { mode });
        }
        for state in ["programmed", "failed"] {
            let _ = m.virtual_services.get_or_create(&StateLabel { state });
        }
        Metrics { registry, ..m }
    }

    /// The HA roles now held, replacing the previous ones.
    pub fn set_vip_roles(&self, vips: &[crate::ha::VipState]) {
        self.vip_role.clear();
        for v in vips {
            self.vip_role
                .get_or_create(&VipRoleLabel {
                    vip: v.address.to_string(),
                    role: v.role.as_str(),
                })
                .set(1);
        }
    }

    /// Counts one drifted kernel object of `virtual_service` that a resync
    /// repaired.
    pub fn drift_repaired(&self, virtual_service: &str, kind: &'static str) {
        let known = {
            let mut seen = self
                .drift_services
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if seen.contains(virtual_service) || seen.len() < MAX_DRIFT_SERIES_SERVICES {
                seen.insert(virtual_service.to_string());
                true
            } else {
                false
            }
        };
        let vs = if known {
            virtual_service
        } else {
            OTHER_VIRTUAL_SERVICES
        };
        self.drift_repaired
            .get_or_create(&DriftLabel {
                virtual_service: Escaped(vs.to_string()),
                kind,
            })
            .inc();
    }

    pub fn ha_takeover(&self) {
        self.ha_takeovers.inc();
    }

    pub fn ha_release(&self) {
        self.ha_releases.inc();
    }

    /// Records one sync.
    pub fn record_sync(&self, report: &SyncReport, duration_secs: f64) {
        let mode = if report.full { "full" } else { "incremental" };
        self.syncs.get_or_create(&ModeLabel { mode }).inc();
        for e in &report.errors {
            self.sync_errors
                .get_or_create(&KindLabel {
                    kind: e.kind.metric_label(),
                })
                .inc();
        }
        for (kind, v) in &report.ops {
            self.ops.get_or_create(&KindLabel { kind }).inc_by(*v);
        }
        // An unchanged resync carries no statuses: the last ones stand.
        if !report.unchanged {
            let programmed = report.services.values().filter(|s| s.programmed).count();
            let failed = report.services.len() - programmed;
            for (state, n) in [("programmed", programmed), ("failed", failed)] {
                self.virtual_services
                    .get_or_create(&StateLabel { state })
                    .set(n as i64);
            }
        }
        let t = now();
        let mut l = self.latest.lock();
        l.last_sync = Some(LastSync {
            at: t,
            duration_secs,
            ok: report.ok(),
        });
        if report.full {
            l.last_full_sync = Some(t);
        }
    }

    /// Kernel counters of the owned services, from a full read, with the
    /// VirtualService each belongs to.
    /// `destinations`: how many the owned services have (their entries may
    /// have been left out already, see [`Metrics::max_destinations`]).
    /// Above the per-destination cap the destinations' counters are
    /// dropped here rather than kept for series that are never written.
    pub fn set_stats(&self, mut stats: StatsSnapshot, destinations: usize) {
        if destinations > self.stats.max_destinations {
            for (s, _) in &mut stats {
                s.destinations = Vec::new();
            }
        }
        stats.shrink_to_fit();
        *self.stats.lock() = Arc::new(Published {
            entries: stats,
            destinations,
        });
    }

    /// The most destinations exported with series of their own
    /// (`--metrics-max-destinations`).
    pub fn max_destinations(&self) -> usize {
        self.stats.max_destinations
    }

    /// A configuration file could not be used.
    pub fn config_error(&self, file: &str) {
        self.config_errors
            .get_or_create(&FileLabel {
                file: Escaped(file.to_string()),
            })
            .inc();
        self.latest.lock().config_valid = Some(false);
    }

    /// The configuration was read in full without errors.
    pub fn config_loaded(&self) {
        self.config_loads.inc();
        self.latest.lock().config_valid = Some(true);
    }

    /// The report-write series exist, at zero, from the first sign of
    /// Kubernetes mode on.
    fn kubernetes_mode(&self) {
        for result in ["ok", "error"] {
            let _ = self.report_writes.get_or_create(&ResultLabel { result });
        }
        for result in ["answered", "failed"] {
            let _ = self.snapshots.get_or_create(&ResultLabel { result });
        }
    }

    /// Whether every watch has a complete list (Kubernetes mode).
    pub fn set_api_synced(&self, synced: bool) {
        self.kubernetes_mode();
        self.latest.lock().api_synced = Some(synced);
    }

    /// A watch of the API server failed (Kubernetes mode).
    pub fn watch_error(&self, kind: &'static str) {
        self.kubernetes_mode();
        self.watch_errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// A write of the node's LvsNode, successful or not (Kubernetes mode).
    pub fn report_write(&self, ok: bool) {
        self.kubernetes_mode();
        let result = if ok { "ok" } else { "error" };
        self.report_writes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// One LvsSnapshot request: answered, or failed (the kernel could not
    /// be read, or the answer could not be written).
    pub fn snapshot(&self, answered: bool) {
        let result = if answered { "answered" } else { "failed" };
        self.snapshots.get_or_create(&ResultLabel { result }).inc();
    }

    /// One health check probe and how long it took.
    pub fn health_probe(&self, check: &'static str, took: std::time::Duration, ok: bool) {
        let label = CheckLabel { r#type: check };
        self.probe_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        let result = if ok { "ok" } else { "failed" };
        self.probes
            .get_or_create(&ProbeLabel {
                check: label,
                result,
            })
            .inc();
    }

    /// The health check table whose destinations `destination_healthy`
    /// reports (set once, by the daemon).
    pub fn set_health_checks(&self, checks: crate::health::Checks) {
        let _ = self.health.checks.set(checks);
    }

    /// Seconds since the last sync, if there was one.
    pub fn last_sync_age(&self) -> Option<f64> {
        self.latest
            .lock()
            .last_sync
            .map(|s| (now() - s.at).max(0.0))
    }

    /// The exposition (OpenMetrics text, served as
    /// [`lvs_runtime::metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        lvs_runtime::metrics::encode(&self.registry)
    }
}

/// Writes one gauge family with a single unlabelled sample.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

#[derive(Debug, Clone, Copy)]
struct LastSync {
    /// Unix time.
    at: f64,
    duration_secs: f64,
    ok: bool,
}

#[derive(Debug, Default)]
struct LatestValues {
    last_sync: Option<LastSync>,
    /// Unix time.
    last_full_sync: Option<f64>,
    config_valid: Option<bool>,
    /// Kubernetes mode only.
    api_synced: Option<bool>,
}

/// The gauges without a value until their first event: no series is
/// written before it (a zero would read as "synced at 1970" or "invalid").
#[derive(Debug, Default)]
struct Latest(Mutex<LatestValues>);

impl Latest {
    fn lock(&self) -> MutexGuard<'_, LatestValues> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Collector for Latest {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let l = self.lock();
        if let Some(s) = l.last_sync {
            gauge(
                &mut enc,
                "last_sync_timestamp_seconds",
                "When the last sync finished (Unix time).",
                s.at,
            )?;
            gauge(
                &mut enc,
                "last_sync_age_seconds",
                "Seconds since the last sync finished.",
                (now() - s.at).max(0.0),
            )?;
            gauge(
                &mut enc,
                "last_sync_duration_seconds",
                "How long the last sync took.",
                s.duration_secs,
            )?;
            gauge(
                &mut enc,
                "last_sync_success",
                "1 if the last sync found no problem.",
                i64::from(s.ok),
            )?;
        }
        if let Some(t) = l.last_full_sync {
            gauge(
                &mut enc,
                "last_full_sync_timestamp_seconds",
                "When the last full resync finished (Unix time).",
                t,
            )?;
        }
        if let Some(valid) = l.config_valid {
            gauge(
                &mut enc,
                "config_valid",
                "1 if the last configuration read had no error (0: the last good one stays programmed).",
                i64::from(valid),
            )?;
        }
        if let Some(synced) = l.api_synced {
            gauge(
                &mut enc,
                "api_synced",
                "1 while every watch (VirtualService, RealServer, Node) has a complete list; 0: the last snapshot stays programmed.",
                i64::from(synced),
            )?;
        }
        Ok(())
    }
}

/// The kernel's counters in the order of [`COUNTER_FAMILIES`]' indices:
/// connections, packets in, packets out, bytes in, bytes out.
type Counts = [u64; 5];

/// A destination's gauges in the order of [`GAUGE_FAMILIES`].
type DestGauges = [u32; 3];

/// One owned service as the exposition reads it: its `service` label, its
/// counters, and per destination its `destination` label, counters and
/// gauges. The one place that reads the kernel's IPVS types.
fn observed(
    s: &ServiceEntry,
) -> (
    String,
    Counts,
    impl Iterator<Item = (String, Counts, DestGauges)> + '_,
) {
    let counts = |c: &Stats| [c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes];
    let dests = s.destinations.iter().map(move |d| {
        (
            d.destination.key.to_string(),
            counts(&d.stats.traffic),
            [
                d.stats.active_conns,
                d.stats.inactive_conns,
                d.stats.persist_conns,
            ],
        )
    });
    (
        ServiceLabel(&s.service.key).to_string(),
        counts(&s.stats),
        dests,
    )
}

/// One sample of a counter family: its `direction` label, if any, and the
/// index of its value in [`Counts`].
type Sample = (Option<&'static str>, usize);

/// Counter families: the name after `service_`/`destination_`, the help,
/// and per sample its `direction` label and index into [`Counts`].
const COUNTER_FAMILIES: [(&str, &str, &[Sample]); 3] = [
    (
        "connections",
        "Connections scheduled (kernel counter).",
        &[(None, 0)],
    ),
    (
        "packets",
        "Packets (kernel counter), by direction.",
        &[(Some("in"), 1), (Some("out"), 2)],
    ),
    (
        "bytes",
        "Bytes (kernel counter), by direction.",
        &[(Some("in"), 3), (Some("out"), 4)],
    ),
];

/// Destination gauge families: the name after `destination_` and the help,
/// in the order of [`DestGauges`].
const GAUGE_FAMILIES: [(&str, &str); 3] = [
    ("active_connections", "Active connections of a destination."),
    (
        "inactive_connections",
        "Inactive connections of a destination.",
    ),
    (
        "persistent_connections",
        "Persistence templates of a destination.",
    ),
];

/// The labels of one kernel-counter series, in this order.
#[derive(Debug)]
struct SeriesLabels<'a> {
    service: &'a str,
    virtual_service: &'a str,
    destination: Option<&'a str>,
    direction: Option<&'a str>,
}

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("service", Escaped(self.service)).encode(enc.encode_label())?;
        ("virtual_service", Escaped(self.virtual_service)).encode(enc.encode_label())?;
        if let Some(d) = self.destination {
            ("destination", Escaped(d)).encode(enc.encode_label())?;
        }
        if let Some(d) = self.direction {
            ("direction", d).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// The counters a full sync published: per destination only while the
/// table is within the cap, so a large table's are not held for nothing.
#[derive(Debug, Default)]
struct Published {
    entries: StatsSnapshot,
    /// Owned destinations in the kernel, counted before any were dropped.
    destinations: usize,
}

/// The kernel counters of the owned services: the snapshot the last full
/// sync published, written out at each scrape.
#[derive(Debug)]
struct KernelStats {
    /// Replaced whole by each full sync; a scrape takes a reference and
    /// writes without holding the lock, so the sync loop never waits for a
    /// scrape of a large table.
    snapshot: Mutex<Arc<Published>>,
    max_destinations: usize,
}

impl KernelStats {
    fn lock(&self) -> MutexGuard<'_, Arc<Published>> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Collector for KernelStats {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let published = Arc::clone(&self.lock());
        let stats = &published.entries;
        let destinations = published.destinations;
        let per_destination = destinations <= self.max_destinations;
        gauge(
            &mut enc,
            "destination_series_omitted",
            "Owned destinations whose per-destination series are left out: the table has more than --metrics-max-destinations (0: all exported).",
            if per_destination { 0 } else { destinations },
        )?;
        if stats.is_empty() {
            return Ok(());
        }
        for (what, help, samples) in COUNTER_FAMILIES {
            let name = format!("service_{what}");
            let mut family = enc.encode_descriptor(&name, help, None, MetricType::Counter)?;
            for (s, owner) in stats.iter() {
                let (service, counts, _) = observed(s);
                for &(direction, i) in samples {
                    let labels = SeriesLabels {
                        service: &service,
                        virtual_service: owner.as_deref().unwrap_or(""),
                        destination: None,
                        direction,
                    };
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, f64>(&counts[i], None)?;
                }
            }
            if !per_destination {
                continue;
            }
            let name = format!("destination_{what}");
            let mut family = enc.encode_descriptor(&name, help, None, MetricType::Counter)?;
            for (s, owner) in stats.iter() {
                let (service, _, dests) = observed(s);
                for (destination, counts, _) in dests {
                    for &(direction, i) in samples {
                        let labels = SeriesLabels {
                            service: &service,
                            virtual_service: owner.as_deref().unwrap_or(""),
                            destination: Some(&destination),
                            direction,
                        };
                        family
                            .encode_family(&labels)?
                            .encode_counter::<NoLabelSet, _, f64>(&counts[i], None)?;
                    }
                }
            }
        }
        if !per_destination {
            return Ok(());
        }
        for (i, (what, help)) in GAUGE_FAMILIES.into_iter().enumerate() {
            let name = format!("destination_{what}");
            let mut family = enc.encode_descriptor(&name, help, None, MetricType::Gauge)?;
            for (s, owner) in stats.iter() {
                let (service, _, dests) = observed(s);
                for (destination, _, gauges) in dests {
                    let labels = SeriesLabels {
                        service: &service,
                        virtual_service: owner.as_deref().unwrap_or(""),
                        destination: Some(&destination),
                        direction: None,
                    };
                    family.encode_family(&labels)?.encode_gauge(&gauges[i])?;
                }
            }
        }
        Ok(())
    }
}

/// `destination_healthy`: read from the health check table at scrape time
/// (the table is the only copy), for services with a check, up to the same
/// destination cap as the kernel counters.
#[derive(Debug)]
struct HealthStates {
    checks: OnceLock<crate::health::Checks>,
    max_destinations: usize,
}

#[derive(Debug)]
struct HealthLabels<'a> {
    virtual_service: &'a str,
    destination: &'a str,
}

impl EncodeLabelSet for HealthLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("virtual_service", Escaped(self.virtual_service)).encode(enc.encode_label())?;
        ("destination", Escaped(self.destination)).encode(enc.encode_label())
    }
}

impl Collector for HealthStates {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(checks) = self.checks.get() else {
            return Ok(());
        };
        // Copied out first: the sync loop and the probes share the lock.
        let mut rows: Vec<(String, std::net::SocketAddr, bool)> = Vec::new();
        checks.lock().each_destination(|o, d, h| {
            if rows.len() < self.max_destinations {
                rows.push((o.to_string(), d, h));
            }
        });
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort();
        let mut family = enc.encode_descriptor(
            "destination_healthy",
            "1 while a destination passes its health check, 0 while it fails (services with a check only).",
            None,
            MetricType::Gauge,
        )?;
        for (owner, dest, healthy) in &rows {
            let destination = dest.to_string();
            family
                .encode_family(&HealthLabels {
                    virtual_service: owner,
                    destination: &destination,
                })?
                .encode_gauge(&i64::from(*healthy))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
