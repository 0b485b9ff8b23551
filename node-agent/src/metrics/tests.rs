use super::*;
use crate::report::{ErrorKind, ServiceSync, SyncError};
use lvs_ipvs::{
    DestConfig, DestEntry, DestKey, DestStats, Destination, Family, FwdMethod, Protocol, Service,
    ServiceConfig, ServiceKey,
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
    m.set_stats(
        vec![(
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
        )],
        1,
    );
    let text = m.render();
    for line in [
        "lvs_agent_syncs_total{mode=\"full\"} 1",
        "lvs_agent_syncs_total{mode=\"incremental\"} 0",
        "lvs_agent_ops_total{kind=\"dest_add\"} 2",
        "lvs_agent_sync_errors_total{kind=\"foreign_service\"} 1",
        "lvs_agent_last_sync_duration_seconds 0.25",
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
    // Every sample line belongs to a declared family: a counter's
    // samples carry `_total` after the family's name (OpenMetrics).
    let declared: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| match l.split_once(' ').unwrap() {
            (name, "counter") => format!("{name}_total"),
            (name, _) => name.to_string(),
        })
        .collect();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(declared.iter().any(|d| d == name), "undeclared {name}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(m.last_sync_age().unwrap() < 5.0);
    assert!(
        text.lines()
            .any(|l| l == "lvs_agent_destination_series_omitted 0")
    );

    // Above the cap: per-service series stay, per-destination ones go,
    // and the gauge counts what was left out.
    // The reconciler leaves the destinations' entries out above the cap
    // and hands over their count, which the gauge reports.
    let capped = Metrics::new(0);
    let mut entries = m.stats.lock().entries.clone();
    entries[0].0.destinations.clear();
    capped.set_stats(entries, 1);
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
