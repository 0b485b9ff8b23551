//! The shipped Grafana dashboard (charts/lvs-operator/dashboards) queries
//! only metrics the node agent and the operator export, with labels they
//! carry: every PromQL expression of the dashboard (panel targets and
//! template variables) is read for its metric names and label names, and
//! each is looked up in a full exposition of each binary's registry, every
//! family populated.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_api::{DirectorRole, HealthAction, HealthCheckType};
use lvs_ipvs::{
    DestConfig, DestEntry, DestKey, DestStats, Destination, Family, FwdMethod, Protocol, Service,
    ServiceConfig, ServiceEntry, ServiceKey, Stats,
};
use lvs_node_agent::health::{Checks, ProbeKey};
use lvs_node_agent::report::{ErrorKind, ServiceSync, SyncError, SyncReport};
use lvs_planner::PlannedHealthCheck;

const DASHBOARD: &str = include_str!("../../charts/lvs-operator/dashboards/lvs-operator.json");

/// Labels Prometheus adds to every scraped sample.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Metric name -> the label names its samples carry.
type Exported = BTreeMap<String, BTreeSet<String>>;

/// The agent's exposition with every family written at least once.
fn agent_exposition() -> String {
    let m = lvs_node_agent::metrics::Metrics::default();
    let mut r = SyncReport {
        full: true,
        ..SyncReport::default()
    };
    r.ops.insert("service_add", 1);
    r.errors
        .push(SyncError::new(ErrorKind::Kernel, Some("a/b".into()), "x"));
    r.services.insert("a/b".into(), ServiceSync::default());
    m.record_sync(&r, 0.1);
    m.config_error("a.yaml");
    m.config_loaded();
    m.set_api_synced(true);
    m.watch_error("virtualservice");
    m.report_write(true);
    m.set_vip_roles(&[lvs_node_agent::ha::VipState {
        address: "192.0.2.10".parse().unwrap(),
        role: DirectorRole::Active,
        since: 0.0,
    }]);
    m.ha_takeover();
    m.ha_release();
    m.health_probe("tcp", Duration::from_millis(3), true);
    let check = Arc::new(PlannedHealthCheck::with_defaults(
        HealthCheckType::Tcp,
        HealthAction::Inhibit,
    ));
    let checks = Checks::new();
    let addr = "10.1.0.1:80".parse().unwrap();
    checks.lock().set_owner(
        "a/b",
        vec![(addr, ProbeKey { addr, check })],
        Instant::now(),
    );
    m.set_health_checks(checks);
    let traffic = Stats {
        conns: 1,
        in_pkts: 1,
        out_pkts: 1,
        in_bytes: 1,
        out_bytes: 1,
        ..Stats::default()
    };
    m.set_stats(
        vec![(
            ServiceEntry {
                service: Service {
                    key: ServiceKey::Tuple {
                        addr: "192.0.2.10".parse().unwrap(),
                        protocol: Protocol::TCP,
                        port: 80,
                    },
                    config: ServiceConfig::new(Family::V4, "rr"),
                },
                stats: traffic,
                destinations: vec![DestEntry {
                    destination: Destination {
                        key: DestKey {
                            addr: addr.ip(),
                            port: 80,
                        },
                        config: DestConfig::new(FwdMethod::Masq, 1),
                    },
                    stats: DestStats {
                        active_conns: 1,
                        inactive_conns: 1,
                        persist_conns: 1,
                        traffic,
                    },
                }],
            },
            Some("a/b".into()),
        )],
        1,
    );
    m.render()
}

/// The operator's exposition with every family written at least once.
fn operator_exposition() -> String {
    let m = Arc::new(lvs_operator::metrics::Metrics::new());
    drop(m.start("virtualservice"));
    m.error("virtualservice", "conflict");
    m.status_write("VirtualService", true);
    m.events.inc();
    m.leader.set(1);
    m.unreadable
        .get_or_create(&lvs_operator::metrics::KindLabel {
            kind: "VirtualService",
        })
        .set(0);
    m.encode()
}

/// Sample names and their label names from an exposition (text format).
fn exported(text: &str) -> Exported {
    let mut out = Exported::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        let Some(rest) = line[name_end..].strip_prefix('{') else {
            continue;
        };
        // name="value",... up to the closing brace; values may hold escaped quotes.
        let mut chars = rest.chars();
        let mut name = String::new();
        while let Some(c) = chars.next() {
            match c {
                '=' => {
                    labels.insert(std::mem::take(&mut name));
                    assert_eq!(chars.next(), Some('"'), "bad label in {line:?}");
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                }
                ',' => {}
                '}' => break,
                c => name.push(c),
            }
        }
    }
    out
}

/// The metric names and the label names one PromQL expression uses.
#[derive(Debug, Default, PartialEq)]
struct Uses {
    metrics: BTreeSet<String>,
    /// Label names in selectors, per metric (`name{label=...}`).
    matchers: BTreeSet<(String, String)>,
    /// Label names in `by`, `without`, `on`, `ignoring`, `group_left`,
    /// `group_right` lists.
    grouping: BTreeSet<String>,
}

/// Words that are not metric names though no `(` may follow them: operator
/// keywords, and aggregations (`sum by (l) (...)`).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Words followed by a list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// A small PromQL reader: enough to find metric names and label names.
/// Strings, ranges, Grafana variables and numbers are skipped; an
/// identifier followed by `(` is a function or aggregation; one followed by
/// `{` or standing alone is a metric name.
fn uses(expr: &str) -> Result<Uses, String> {
    let mut u = Uses::default();
    let b = expr.as_bytes();
    let ident = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_' || b[*i] == b':') {
            *i += 1;
        }
        expr[s..*i].to_string()
    };
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let skip_string = |i: &mut usize| -> Result<(), String> {
        let q = b[*i];
        *i += 1;
        while *i < b.len() && b[*i] != q {
            if b[*i] == b'\\' {
                *i += 1;
            }
            *i += 1;
        }
        if *i >= b.len() {
            return Err(format!("unterminated string in {expr:?}"));
        }
        *i += 1;
        Ok(())
    };
    // The label names of a `{...}` selector starting at `i`.
    let selector = |i: &mut usize| -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        *i += 1;
        loop {
            skip_ws(i);
            match b.get(*i) {
                None => return Err(format!("unterminated selector in {expr:?}")),
                Some(b'}') => {
                    *i += 1;
                    return Ok(names);
                }
                Some(b',' | b'=' | b'!' | b'~') => *i += 1,
                Some(b'"' | b'\'') => skip_string(i)?,
                Some(c) if c.is_ascii_alphabetic() || *c == b'_' => names.push(ident(i)),
                Some(c) => {
                    return Err(format!(
                        "unexpected {:?} in a selector of {expr:?}",
                        *c as char
                    ));
                }
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' || c == b'`' {
            skip_string(&mut i)?;
        } else if c == b'[' {
            // A range or subquery: a duration or a Grafana variable.
            i = expr[i..]
                .find(']')
                .map(|e| i + e + 1)
                .ok_or_else(|| format!("unterminated range in {expr:?}"))?;
        } else if c == b'$' {
            i += 1;
            ident(&mut i);
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c == b'{' {
            return Err(format!("a selector without a metric name in {expr:?}"));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let word = ident(&mut i);
            let mut j = i;
            skip_ws(&mut j);
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if b.get(j) == Some(&b'(') {
                    let end = expr[j..]
                        .find(')')
                        .map(|e| j + e)
                        .ok_or_else(|| format!("unterminated {word} list in {expr:?}"))?;
                    u.grouping.extend(
                        expr[j + 1..end]
                            .split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from),
                    );
                    i = end + 1;
                }
            } else if b.get(j) == Some(&b'(') || KEYWORDS.contains(&lower.as_str()) {
                // A function, an aggregation or an operator keyword.
            } else {
                if b.get(j) == Some(&b'{') {
                    i = j;
                    for l in selector(&mut i)? {
                        u.matchers.insert((word.clone(), l));
                    }
                }
                u.metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    Ok(u)
}

/// Every query of a dashboard: (where, expression). A template variable's
/// `label_values(EXPR, LABEL)` becomes `count by (LABEL) (EXPR)`, so that its
/// metric must carry LABEL.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                let title = p["title"].as_str().unwrap_or("?");
                let r = t["refId"].as_str().unwrap_or("?");
                out.push((format!("panel {title:?} target {r}"), e.to_string()));
            }
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_default();
        let name = v["name"].as_str().unwrap_or("?");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','))
            .map(|(e, l)| format!("count by ({}) ({e})", l.trim()))
            .unwrap_or_else(|| q.to_string());
        out.push((format!("variable {name:?}"), inner));
    }
    out
}

/// What a dashboard names that the expositions do not have, one line each.
fn missing(dashboard: &str, exported: &Exported) -> Vec<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(dashboard).expect("the dashboard is JSON");
    let mut problems = Vec::new();
    let qs = queries(&dashboard);
    if qs.is_empty() {
        problems.push("the dashboard has no query".to_string());
    }
    for (at, expr) in qs {
        let u = match uses(&expr) {
            Ok(u) => u,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        if u.metrics.is_empty() {
            problems.push(format!("{at}: no metric in {expr:?}"));
        }
        let mut labels: BTreeSet<&str> = TARGET_LABELS.into();
        for m in &u.metrics {
            match exported.get(m) {
                Some(l) => labels.extend(l.iter().map(String::as_str)),
                None => problems.push(format!(
                    "{at}: metric {m} is exported by neither the agent nor the operator"
                )),
            }
        }
        for (m, l) in &u.matchers {
            if let Some(ls) = exported.get(m)
                && !TARGET_LABELS.contains(&l.as_str())
                && !ls.contains(l)
            {
                problems.push(format!("{at}: {m} has no label {l:?}"));
            }
        }
        for l in &u.grouping {
            if !labels.contains(l.as_str()) {
                problems.push(format!(
                    "{at}: groups by label {l:?}, which none of {:?} carries",
                    u.metrics
                ));
            }
        }
    }
    problems
}

fn both() -> Exported {
    let mut e = exported(&agent_exposition());
    e.extend(exported(&operator_exposition()));
    e
}

#[test]
fn the_shipped_dashboard_queries_only_exported_metrics_and_labels() {
    let problems = missing(DASHBOARD, &both());
    assert!(
        problems.is_empty(),
        "the dashboard names what the binaries do not export:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_declared_family_has_samples_in_the_fixtures() {
    // A family the fixtures left empty could not be found by the check.
    for text in [agent_exposition(), operator_exposition()] {
        let e = exported(&text);
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let sample = match kind {
                    "counter" => format!("{name}_total"),
                    "histogram" => format!("{name}_bucket"),
                    _ => name.to_string(),
                };
                assert!(e.contains_key(&sample), "{sample} has no sample in\n{text}");
            }
        }
    }
}

#[test]
fn a_misspelt_metric_or_label_is_reported() {
    let dashboard = serde_json::json!({
        "panels": [{"title": "t", "targets": [
            {"refId": "A", "expr": "sum by (instance) (rate(lvs_agent_syncs_totl[5m]))"},
            {"refId": "B", "expr": "sum by (vs) (rate(lvs_agent_service_connections_total{virtual_service=~\"$vs\"}[$__rate_interval]))"},
            {"refId": "C", "expr": "lvs_operator_leader{controller=\"x\"}"},
        ]}],
        "templating": {"list": [
            {"name": "v", "type": "query", "query": {"query": "label_values(lvs_agent_syncs_total, node)"}},
        ]},
    })
    .to_string();
    let problems = missing(&dashboard, &both());
    let expect = [
        "panel \"t\" target A: metric lvs_agent_syncs_totl is exported by neither the agent nor the operator",
        "panel \"t\" target B: groups by label \"vs\", which none of {\"lvs_agent_service_connections_total\"} carries",
        "panel \"t\" target C: lvs_operator_leader has no label \"controller\"",
        "variable \"v\": groups by label \"node\", which none of {\"lvs_agent_syncs_total\"} carries",
    ];
    assert_eq!(problems, expect);
}

#[test]
fn the_reader_finds_names_and_skips_the_rest() {
    let u = uses(
        r#"histogram_quantile(0.95, sum by (le, type) (rate(a_bucket{instance=~"$x", t!="}"}[$__rate_interval])))
           or on (instance) (0 * max without (j) (b:rec offset 5m)) > bool 1e3 unless c"#,
    )
    .unwrap();
    assert_eq!(
        u.metrics,
        ["a_bucket", "b:rec", "c"].map(String::from).into()
    );
    assert_eq!(
        u.matchers,
        [("a_bucket", "instance"), ("a_bucket", "t")]
            .map(|(m, l)| (m.to_string(), l.to_string()))
            .into()
    );
    assert_eq!(
        u.grouping,
        ["instance", "j", "le", "type"].map(String::from).into()
    );
    assert!(uses(r#"a{b="x"#).is_err());
}
