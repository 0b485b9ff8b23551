//! Prometheus metrics, rendered by hand in the text exposition format.
//!
//! The agent exports a few dozen series plus the kernel counters of the
//! services it owns; a registry crate would add more than it saves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use lvs_ipvs::{DestStats, ServiceEntry, ServiceKey, Stats};

use crate::kernel::ServiceLabel;
use crate::report::SyncReport;

#[derive(Debug, Default)]
struct Inner {
    syncs: BTreeMap<&'static str, u64>,
    sync_errors: BTreeMap<&'static str, u64>,
    ops: BTreeMap<&'static str, u64>,
    last_sync: Option<f64>,
    last_full_sync: Option<f64>,
    last_sync_duration: f64,
    last_sync_ok: bool,
    config_errors: BTreeMap<String, u64>,
    config_valid: Option<bool>,
    config_loads: u64,
    virtual_services: BTreeMap<&'static str, u64>,
    /// Shared with the renderer, which formats it without holding the lock
    /// (a large table takes a while, and the sync loop must not wait).
    stats: Arc<Vec<(ServiceEntry, Option<String>)>>,
    /// Kubernetes mode only (None: not in Kubernetes mode).
    api_synced: Option<bool>,
    watch_errors: BTreeMap<&'static str, u64>,
    report_writes: BTreeMap<&'static str, u64>,
}

/// The agent's metrics, shared by the sync loop, the sources and the HTTP
/// server.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
    max_destinations: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DESTINATIONS)
    }
}

/// Per-destination series are exported up to this many destinations by
/// default: eight series each, so a 200,000-destination table would be 1.6
/// million series, more than a scrape or a Prometheus should carry.
pub const DEFAULT_MAX_DESTINATIONS: usize = 10_000;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Escapes a label value: backslash, double quote and newline.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Metrics that export per-destination series while the owned table has
    /// at most `max_destinations` destinations (per-service series always).
    pub fn new(max_destinations: usize) -> Self {
        Self {
            inner: Mutex::default(),
            max_destinations,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one sync.
    pub fn record_sync(&self, report: &SyncReport, duration_secs: f64) {
        let mut m = self.lock();
        let t = now();
        *m.syncs
            .entry(if report.full { "full" } else { "incremental" })
            .or_default() += 1;
        for e in &report.errors {
            *m.sync_errors.entry(e.kind.metric_label()).or_default() += 1;
        }
        for (k, v) in &report.ops {
            *m.ops.entry(k).or_default() += v;
        }
        m.last_sync = Some(t);
        if report.full {
            m.last_full_sync = Some(t);
        }
        m.last_sync_duration = duration_secs;
        m.last_sync_ok = report.ok();
        m.virtual_services.clear();
        for s in report.services.values() {
            *m.virtual_services
                .entry(if s.programmed { "programmed" } else { "failed" })
                .or_default() += 1;
        }
    }

    /// Kernel counters of the owned services, from a full read, with the
    /// VirtualService each belongs to.
    pub fn set_stats(&self, stats: Vec<(ServiceEntry, Option<String>)>) {
        self.lock().stats = Arc::new(stats);
    }

    /// A configuration file could not be used.
    pub fn config_error(&self, file: &str) {
        let mut m = self.lock();
        *m.config_errors.entry(file.to_string()).or_default() += 1;
        m.config_valid = Some(false);
    }

    /// The configuration was read in full without errors.
    pub fn config_loaded(&self) {
        let mut m = self.lock();
        m.config_valid = Some(true);
        m.config_loads += 1;
    }

    /// Whether every watch has a complete list (Kubernetes mode).
    pub fn set_api_synced(&self, synced: bool) {
        self.lock().api_synced = Some(synced);
    }

    /// A watch of the API server failed (Kubernetes mode).
    pub fn watch_error(&self, kind: &'static str) {
        *self.lock().watch_errors.entry(kind).or_default() += 1;
    }

    /// A write of the node's LvsNode, successful or not (Kubernetes mode).
    pub fn report_write(&self, ok: bool) {
        *self
            .lock()
            .report_writes
            .entry(if ok { "ok" } else { "error" })
            .or_default() += 1;
    }

    /// Seconds since the last sync, if there was one.
    pub fn last_sync_age(&self) -> Option<f64> {
        self.lock().last_sync.map(|t| (now() - t).max(0.0))
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut o = String::new();
        let mut family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} {kind}");
        };

        family(
            &mut o,
            "lvs_agent_syncs_total",
            "counter",
            "Syncs run, by mode (full reads the kernel first).",
        );
        for mode in ["full", "incremental"] {
            let _ = writeln!(
                o,
                "lvs_agent_syncs_total{{mode=\"{mode}\"}} {}",
                m.syncs.get(mode).copied().unwrap_or(0)
            );
        }
        family(
            &mut o,
            "lvs_agent_sync_errors_total",
            "counter",
            "Problems found by syncs, by kind.",
        );
        for (k, v) in &m.sync_errors {
            let _ = writeln!(o, "lvs_agent_sync_errors_total{{kind=\"{k}\"}} {v}");
        }
        family(
            &mut o,
            "lvs_agent_ops_total",
            "counter",
            "Kernel writes, by kind.",
        );
        for (k, v) in &m.ops {
            let _ = writeln!(o, "lvs_agent_ops_total{{kind=\"{k}\"}} {v}");
        }
        if let Some(t) = m.last_sync {
            family(
                &mut o,
                "lvs_agent_last_sync_timestamp_seconds",
                "gauge",
                "When the last sync finished (Unix time).",
            );
            let _ = writeln!(o, "lvs_agent_last_sync_timestamp_seconds {t:.3}");
            family(
                &mut o,
                "lvs_agent_last_sync_age_seconds",
                "gauge",
                "Seconds since the last sync finished.",
            );
            let _ = writeln!(
                o,
                "lvs_agent_last_sync_age_seconds {:.3}",
                (now() - t).max(0.0)
            );
            family(
                &mut o,
                "lvs_agent_last_sync_duration_seconds",
                "gauge",
                "How long the last sync took.",
            );
            let _ = writeln!(
                o,
                "lvs_agent_last_sync_duration_seconds {:.6}",
                m.last_sync_duration
            );
            family(
                &mut o,
                "lvs_agent_last_sync_success",
                "gauge",
                "1 if the last sync found no problem.",
            );
            let _ = writeln!(
                o,
                "lvs_agent_last_sync_success {}",
                u8::from(m.last_sync_ok)
            );
        }
        if let Some(t) = m.last_full_sync {
            family(
                &mut o,
                "lvs_agent_last_full_sync_timestamp_seconds",
                "gauge",
                "When the last full resync finished (Unix time).",
            );
            let _ = writeln!(o, "lvs_agent_last_full_sync_timestamp_seconds {t:.3}");
        }
        family(
            &mut o,
            "lvs_agent_virtual_services",
            "gauge",
            "VirtualServices this node directs, by programmed state.",
        );
        for state in ["programmed", "failed"] {
            let _ = writeln!(
                o,
                "lvs_agent_virtual_services{{state=\"{state}\"}} {}",
                m.virtual_services.get(state).copied().unwrap_or(0)
            );
        }
        family(
            &mut o,
            "lvs_agent_config_errors_total",
            "counter",
            "Configuration files that could not be used, by file.",
        );
        for (f, v) in &m.config_errors {
            let _ = writeln!(
                o,
                "lvs_agent_config_errors_total{{file=\"{}\"}} {v}",
                esc(f)
            );
        }
        if let Some(valid) = m.config_valid {
            family(
                &mut o,
                "lvs_agent_config_valid",
                "gauge",
                "1 if the last configuration read had no error (0: the last good one stays programmed).",
            );
            let _ = writeln!(o, "lvs_agent_config_valid {}", u8::from(valid));
        }
        family(
            &mut o,
            "lvs_agent_config_loads_total",
            "counter",
            "Configuration reads without error.",
        );
        let _ = writeln!(o, "lvs_agent_config_loads_total {}", m.config_loads);

        if let Some(synced) = m.api_synced {
            family(
                &mut o,
                "lvs_agent_api_synced",
                "gauge",
                "1 while every watch (VirtualService, RealServer, Node) has a complete list; 0: the last snapshot stays programmed.",
            );
            let _ = writeln!(o, "lvs_agent_api_synced {}", u8::from(synced));
        }
        let kubernetes_mode =
            m.api_synced.is_some() || !m.watch_errors.is_empty() || !m.report_writes.is_empty();
        if kubernetes_mode {
            family(
                &mut o,
                "lvs_agent_watch_errors_total",
                "counter",
                "Failed watches or lists of the API server, by kind.",
            );
            for (k, v) in &m.watch_errors {
                let _ = writeln!(o, "lvs_agent_watch_errors_total{{kind=\"{k}\"}} {v}");
            }
            family(
                &mut o,
                "lvs_agent_report_writes_total",
                "counter",
                "Writes of the node's LvsNode, by result.",
            );
            for result in ["ok", "error"] {
                let _ = writeln!(
                    o,
                    "lvs_agent_report_writes_total{{result=\"{result}\"}} {}",
                    m.report_writes.get(result).copied().unwrap_or(0)
                );
            }
        }

        let stats = Arc::clone(&m.stats);
        drop(m);
        render_stats(&mut o, &stats, self.max_destinations, &mut family);
        o
    }
}

fn render_stats(
    o: &mut String,
    stats: &[(ServiceEntry, Option<String>)],
    max_destinations: usize,
    family: &mut impl FnMut(&mut String, &str, &str, &str),
) {
    let destinations: usize = stats.iter().map(|(s, _)| s.destinations.len()).sum();
    let per_destination = destinations <= max_destinations;
    family(
        o,
        "lvs_agent_destination_series_omitted",
        "gauge",
        "Owned destinations whose per-destination series are left out: the table has more than --metrics-max-destinations (0: all exported).",
    );
    let _ = writeln!(
        o,
        "lvs_agent_destination_series_omitted {}",
        if per_destination { 0 } else { destinations }
    );
    if stats.is_empty() {
        return;
    }
    let svc_labels = |k: &ServiceKey, owner: &Option<String>| {
        format!(
            "service=\"{}\",virtual_service=\"{}\"",
            esc(&ServiceLabel(k).to_string()),
            esc(owner.as_deref().unwrap_or(""))
        )
    };
    type Samples = fn(&Stats) -> Vec<(Option<&'static str>, u64)>;
    let counter_families: [(&str, &str, Samples); 3] = [
        (
            "connections",
            "Connections scheduled (kernel counter).",
            |c| vec![(None, c.conns)],
        ),
        ("packets", "Packets (kernel counter), by direction.", |c| {
            vec![(Some("in"), c.in_pkts), (Some("out"), c.out_pkts)]
        }),
        ("bytes", "Bytes (kernel counter), by direction.", |c| {
            vec![(Some("in"), c.in_bytes), (Some("out"), c.out_bytes)]
        }),
    ];
    for (what, help, get) in counter_families {
        let name = format!("lvs_agent_service_{what}_total");
        family(o, &name, "counter", help);
        for (s, owner) in stats {
            for (dir, v) in get(&s.stats) {
                let dir = dir
                    .map(|d| format!(",direction=\"{d}\""))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "{name}{{{}{dir}}} {v}",
                    svc_labels(&s.service.key, owner)
                );
            }
        }
        if !per_destination {
            continue;
        }
        let name = format!("lvs_agent_destination_{what}_total");
        family(o, &name, "counter", help);
        for (s, owner) in stats {
            for d in &s.destinations {
                for (dir, v) in get(&d.stats.traffic) {
                    let dir = dir
                        .map(|d| format!(",direction=\"{d}\""))
                        .unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "{name}{{{},destination=\"{}\"{dir}}} {v}",
                        svc_labels(&s.service.key, owner),
                        esc(&d.destination.key.to_string())
                    );
                }
            }
        }
    }
    type Gauge = fn(&DestStats) -> u32;
    let gauges: [(&str, &str, Gauge); 3] = [
        (
            "active_connections",
            "Active connections of a destination.",
            |g| g.active_conns,
        ),
        (
            "inactive_connections",
            "Inactive connections of a destination.",
            |g| g.inactive_conns,
        ),
        (
            "persistent_connections",
            "Persistence templates of a destination.",
            |g| g.persist_conns,
        ),
    ];
    if !per_destination {
        return;
    }
    for (what, help, get) in gauges {
        let name = format!("lvs_agent_destination_{what}");
        family(o, &name, "gauge", help);
        for (s, owner) in stats {
            for d in &s.destinations {
                let _ = writeln!(
                    o,
                    "{name}{{{},destination=\"{}\"}} {}",
                    svc_labels(&s.service.key, owner),
                    esc(&d.destination.key.to_string()),
                    get(&d.stats)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ErrorKind, ServiceSync, SyncError};
    use lvs_ipvs::{
        DestConfig, DestEntry, DestKey, Destination, Family, FwdMethod, Protocol, Service,
        ServiceConfig,
    };

    #[test]
    fn renders_sync_ops_errors_and_kernel_stats() {
        let m = Metrics::default();
        let mut r = SyncReport {
            full: true,
            ..SyncReport::default()
        };
        r.count("service_add");
        r.count("dest_add");
        r.count("dest_add");
        r.errors.push(SyncError::new(
            ErrorKind::ForeignService,
            Some("a/b".into()),
            "x",
        ));
        r.services.insert("a/b".into(), ServiceSync::default());
        m.record_sync(&r, 0.25);
        m.config_error("bad\"file.yaml");
        let key = ServiceKey::Tuple {
            addr: "10.0.0.1".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 80,
        };
        m.set_stats(vec![(
            ServiceEntry {
                service: Service {
                    key,
                    config: ServiceConfig::new(Family::V4, "rr"),
                },
                stats: Stats {
                    conns: 12,
                    in_pkts: 100,
                    out_pkts: 90,
                    in_bytes: 5000,
                    out_bytes: 7000,
                    ..Stats::default()
                },
                destinations: vec![DestEntry {
                    destination: Destination {
                        key: DestKey {
                            addr: "10.1.0.1".parse().unwrap(),
                            port: 8080,
                        },
                        config: DestConfig::new(FwdMethod::Masq, 1),
                    },
                    stats: DestStats {
                        active_conns: 3,
                        inactive_conns: 1,
                        persist_conns: 0,
                        traffic: Stats {
                            conns: 12,
                            ..Stats::default()
                        },
                    },
                }],
            },
            Some("a/b".into()),
        )]);
        let text = m.render();
        for line in [
            "lvs_agent_syncs_total{mode=\"full\"} 1",
            "lvs_agent_syncs_total{mode=\"incremental\"} 0",
            "lvs_agent_ops_total{kind=\"dest_add\"} 2",
            "lvs_agent_sync_errors_total{kind=\"foreign_service\"} 1",
            "lvs_agent_last_sync_duration_seconds 0.250000",
            "lvs_agent_last_sync_success 0",
            "lvs_agent_virtual_services{state=\"failed\"} 1",
            "lvs_agent_config_errors_total{file=\"bad\\\"file.yaml\"} 1",
            "lvs_agent_config_valid 0",
            "lvs_agent_service_connections_total{service=\"TCP/10.0.0.1:80\",virtual_service=\"a/b\"} 12",
            "lvs_agent_service_bytes_total{service=\"TCP/10.0.0.1:80\",virtual_service=\"a/b\",direction=\"out\"} 7000",
            "lvs_agent_destination_active_connections{service=\"TCP/10.0.0.1:80\",virtual_service=\"a/b\",destination=\"10.1.0.1:8080\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line belongs to a declared family.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(declared.contains(&name), "undeclared {name}");
        }
        assert!(m.last_sync_age().unwrap() < 5.0);
        assert!(
            text.lines()
                .any(|l| l == "lvs_agent_destination_series_omitted 0")
        );

        // Above the cap: per-service series stay, per-destination ones go,
        // and the gauge counts what was left out.
        let capped = Metrics::new(0);
        capped.set_stats(Arc::unwrap_or_clone(m.lock().stats.clone()));
        let text = capped.render();
        assert!(
            text.lines()
                .any(|l| l == "lvs_agent_destination_series_omitted 1")
        );
        assert!(text.contains("lvs_agent_service_connections_total{"));
        assert!(
            !text.contains("lvs_agent_destination_active_connections{"),
            "{text}"
        );
        assert!(
            !text.contains("lvs_agent_destination_connections_total"),
            "{text}"
        );
    }
}
