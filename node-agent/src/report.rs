//! What a sync did: its errors, its op counts, and the state of each
//! VirtualService on this node. The Kubernetes mode publishes the per-service
//! part as status; the standalone mode logs it and serves it on `/status`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Kinds of failure, used as the `kind` label of the error metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A desired IPVS service exists and was not created by the agent.
    ForeignService,
    /// A desired destination exists in an owned service and was not added by the agent.
    ForeignDestination,
    /// The kernel refused a write.
    Kernel,
    /// The director interface could not be determined.
    Interface,
    /// Reading kernel state failed.
    Read,
    /// The ledger could not be written.
    Ledger,
    /// IPVS is not available but services are wanted.
    IpvsUnavailable,
    /// A director VIP is not held because none of its services is in the
    /// kernel.
    VipWithheld,
    /// A VIP with several directors has no HA role on this node, so it is
    /// not held.
    HaRoleMissing,
    /// An IPVS sync daemon of a wanted role runs with other settings and
    /// was not started by the agent.
    ForeignDaemon,
    /// A realserver address of this node receives GRE both with and
    /// without a checksum, which the kernel cannot tell apart.
    TunnelConflict,
}

impl ErrorKind {
    /// Whether the kind concerns the whole node even when the reconciler
    /// names the VirtualService that hit it (IPVS missing fails every
    /// service alike).
    pub fn node_level(self) -> bool {
        matches!(
            self,
            ErrorKind::IpvsUnavailable | ErrorKind::Read | ErrorKind::Ledger
        )
    }

    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorKind::ForeignService => "foreign_service",
            ErrorKind::ForeignDestination => "foreign_destination",
            ErrorKind::Kernel => "kernel",
            ErrorKind::Interface => "interface",
            ErrorKind::Read => "read",
            ErrorKind::Ledger => "ledger",
            ErrorKind::IpvsUnavailable => "ipvs_unavailable",
            ErrorKind::VipWithheld => "vip_withheld",
            ErrorKind::TunnelConflict => "tunnel_conflict",
            ErrorKind::HaRoleMissing => "ha_role_missing",
            ErrorKind::ForeignDaemon => "foreign_daemon",
        }
    }
}

/// One problem of a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncError {
    pub kind: ErrorKind,
    /// The VirtualService (namespace/name) it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub message: String,
}

impl SyncError {
    pub fn new(kind: ErrorKind, owner: Option<String>, message: impl Into<String>) -> Self {
        SyncError {
            kind,
            owner,
            message: message.into(),
        }
    }

    /// The same problem once for each owner (a VIP shared by several
    /// VirtualServices), or once without an owner when there is none.
    pub fn for_owners(
        kind: ErrorKind,
        owners: impl IntoIterator<Item = String>,
        message: impl Into<String>,
    ) -> Vec<Self> {
        let message = message.into();
        let mut out: Vec<Self> = owners
            .into_iter()
            .map(|o| SyncError::new(kind, Some(o), message.clone()))
            .collect();
        if out.is_empty() {
            out.push(SyncError::new(kind, None, message));
        }
        out
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(o) => write!(f, "{o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The programmed state of one VirtualService on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSync {
    /// metadata.generation of the spec that was planned.
    pub generation: Option<i64>,
    /// Everything for the service is in the kernel as planned.
    pub programmed: bool,
    pub errors: Vec<String>,
}

/// The outcome of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Whether the kernel was read in full first.
    pub full: bool,
    /// Writes by kind (`service_add`, `addr_del`, ...).
    pub ops: BTreeMap<&'static str, u64>,
    /// Per VirtualService this node directs, by namespace/name.
    pub services: BTreeMap<String, ServiceSync>,
    pub errors: Vec<SyncError>,
    /// Full syncs: the agent's kernel objects someone else changed, which
    /// this sync repaired (see [`crate::reconcile::drift`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<crate::reconcile::drift::Drift>,
    /// A full resync that found the kernel exactly as the last sync left
    /// it, with nothing pending since that sync (see
    /// [`Reconciler::recheck`](crate::reconcile::Reconciler::recheck)):
    /// nothing was planned or written, `services` is empty and the
    /// published statuses stand.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
}

impl SyncReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn total_ops(&self) -> u64 {
        self.ops.values().sum()
    }

    pub(crate) fn count(&mut self, kind: &'static str) {
        *self.ops.entry(kind).or_default() += 1;
    }
}

/// How often the same sync error is logged again while it persists.
pub const LOG_REPEAT_INTERVAL: Duration = Duration::from_secs(60);

/// One log line for the errors of a sync that share a kind and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine {
    pub kind: ErrorKind,
    pub message: String,
    /// How many errors of this sync had this kind and message (one per
    /// VirtualService it concerns).
    pub count: usize,
    /// The first few VirtualServices it concerns, for the log.
    pub owners: Vec<String>,
    /// How many syncs since the last time it was logged had it too (not
    /// logged then).
    pub repeated: u64,
}

/// How many owners an [`ErrorLine`] names.
pub const LOG_OWNERS: usize = 3;

/// Keeps sync errors from flooding the log: the errors of a sync are
/// grouped by kind and message, so an error shared by thousands of services
/// is one line with a count; a group already logged within the interval is
/// only counted, and logged again, with that count, once the interval has
/// passed. Every distinct error is logged when first seen.
#[derive(Debug)]
pub struct ErrorLog {
    interval: Duration,
    seen: HashMap<(ErrorKind, String), Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    repeated: u64,
}

impl Default for ErrorLog {
    fn default() -> Self {
        ErrorLog::new(LOG_REPEAT_INTERVAL)
    }
}

impl ErrorLog {
    pub fn new(interval: Duration) -> Self {
        ErrorLog {
            interval,
            seen: HashMap::new(),
        }
    }

    /// The lines to log for the errors of one sync at `now`, in the order
    /// the errors first appear.
    pub fn lines(&mut self, errors: &[SyncError], now: Instant) -> Vec<ErrorLine> {
        let mut groups: Vec<ErrorLine> = Vec::new();
        let mut index: HashMap<(ErrorKind, &str), usize> = HashMap::new();
        for e in errors {
            let i = *index
                .entry((e.kind, e.message.as_str()))
                .or_insert_with(|| {
                    groups.push(ErrorLine {
                        kind: e.kind,
                        message: e.message.clone(),
                        count: 0,
                        owners: Vec::new(),
                        repeated: 0,
                    });
                    groups.len() - 1
                });
            let g = &mut groups[i];
            g.count += 1;
            if let Some(o) = &e.owner
                && g.owners.len() < LOG_OWNERS
            {
                g.owners.push(o.clone());
            }
        }
        // Forget what is gone and was logged long enough ago (an error that
        // flaps within the interval is still logged once per interval).
        let interval = self.interval;
        self.seen.retain(|k, s| {
            index.contains_key(&(k.0, k.1.as_str())) || now.duration_since(s.logged_at) < interval
        });
        let mut out = Vec::new();
        for mut g in groups {
            match self.seen.get_mut(&(g.kind, g.message.clone())) {
                Some(s) if now.duration_since(s.logged_at) < interval => s.repeated += 1,
                Some(s) => {
                    g.repeated = s.repeated;
                    s.logged_at = now;
                    s.repeated = 0;
                    out.push(g);
                }
                None => {
                    self.seen.insert(
                        (g.kind, g.message.clone()),
                        Seen {
                            logged_at: now,
                            repeated: 0,
                        },
                    );
                    out.push(g);
                }
            }
        }
        out
    }
}

/// The roles a node can play for a VirtualService, as the LvsNode report
/// names them.
pub mod roles {
    pub const DIRECTOR: &str = "director";
    pub const DR_REALSERVER: &str = "dr-realserver";
    pub const TUN_REALSERVER: &str = "tun-realserver";
}

/// What this node must do for one VirtualService, according to the planner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeRole {
    /// metadata.generation of the VirtualService that was planned.
    pub generation: Option<i64>,
    /// Sorted, unique; empty for a DR/TUN realserver node of a fwmark
    /// service (it is involved, but has nothing to set up).
    pub roles: Vec<&'static str>,
}

/// The VirtualServices `node` has a role in, by namespace/name: exactly the
/// accepted services whose [`Verdict::involved_nodes`] name it, which is the
/// set the operator waits for. A director that is also a realserver of the
/// same service is planned (and reported) as a director only.
///
/// [`Verdict::involved_nodes`]: lvs_planner::Verdict::involved_nodes
pub fn node_roles(node: &str, analysis: &lvs_planner::Analysis) -> BTreeMap<String, NodeRole> {
    analysis
        .verdicts
        .iter()
        .filter_map(|v| node_role(node, v).map(|r| (v.name.clone(), r)))
        .collect()
}

/// The role of `node` in one VirtualService, if it has one (see
/// [`node_roles`]).
pub fn node_role(node: &str, v: &lvs_planner::Verdict) -> Option<NodeRole> {
    use lvs_api::ForwardingMethod;
    if !v.involved_nodes().iter().any(|n| n == node) {
        return None;
    }
    let mut r: Vec<&'static str> = if v.directors.iter().any(|d| d == node) {
        vec![roles::DIRECTOR]
    } else {
        v.real_servers
            .iter()
            .filter(|rs| rs.ready() && rs.node.as_deref() == Some(node))
            .filter_map(|rs| v.destinations.iter().find(|d| *d.owner == *rs.name))
            .filter_map(|d| match d.method {
                ForwardingMethod::Dr => Some(roles::DR_REALSERVER),
                ForwardingMethod::Tun => Some(roles::TUN_REALSERVER),
                ForwardingMethod::Nat => None,
            })
            .collect()
    };
    r.sort_unstable();
    r.dedup();
    Some(NodeRole {
        generation: v.generation,
        roles: r,
    })
}

/// Longest error text per VirtualService in an LvsNode report; longer text
/// is cut (the agent's log and `/status` keep all of it).
pub const MAX_REPORT_ERROR: usize = 1024;

/// At most this many node errors (and as many unreadable objects) are
/// listed in an LvsNode; the rest are counted in `omittedErrors`.
pub const MAX_NODE_ERRORS: usize = 16;

/// The total size of per-service error text in an LvsNode. Once it is used
/// up, a failing service's entry says [`ERROR_LEFT_OUT`] instead, so the
/// object grows by a short entry per service however many fail, and stays
/// far below the API server's request limit.
pub const SERVICE_ERROR_BUDGET: usize = 128 * 1024;

/// The error of a service entry whose text did not fit the budget.
pub const ERROR_LEFT_OUT: &str = "failed (text left out to bound the report; see the agent's log)";

/// At most this many destination entries are listed per VirtualService in
/// an LvsNode, and [`MAX_DESTINATION_ENTRIES`] over all; the rest are
/// counted in `omittedDestinations` (the `healthy`/`total` counts stay
/// exact). A director of 10k failing destinations thus writes a report of
/// bounded size, and every service still shows a few examples.
pub const MAX_SERVICE_DESTINATIONS: usize = 16;

/// At most this many destination entries in one LvsNode.
pub const MAX_DESTINATION_ENTRIES: usize = 512;

/// Longest `lastError` of a destination entry in an LvsNode.
pub const MAX_DESTINATION_ERROR: usize = 256;

/// Copies a director's destination states (see [`DestinationStates`]) into
/// the service reports of the same name: `healthy`, `total` and the entries
/// of the destinations that are not healthy. Reports of services this node
/// does not direct are left as they are.
pub fn with_destinations(
    reports: &mut [lvs_api::ServiceReport],
    states: &BTreeMap<String, DestinationStates>,
) {
    for r in reports.iter_mut() {
        if let Some(st) = states.get(&r.name) {
            r.healthy = Some(st.healthy);
            r.total = Some(st.total);
            r.destinations = st.entries.clone();
        }
    }
}

/// Whether an error concerns the node rather than one VirtualService: it
/// names none, or its kind fails every service alike.
pub fn is_node_error(e: &SyncError) -> bool {
    e.owner.is_none() || e.kind.node_level()
}

/// The node-level errors of a sync, each message once, in order of first
/// appearance.
pub fn node_errors(report: &SyncReport) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    report
        .errors
        .iter()
        .filter(|e| is_node_error(e))
        .filter(|e| seen.insert(e.message.as_str()))
        .map(|e| e.message.clone())
        .collect()
}

/// The per-service view of a sync: one entry per VirtualService the node
/// has a role in, sorted by name, with the generation that was planned and
/// the errors that name that service. Node-level errors (see
/// [`is_node_error`]) are not copied into the entries: they are reported
/// once, from [`node_errors`].
pub fn lvsnode_services(
    roles: &BTreeMap<String, NodeRole>,
    report: &SyncReport,
) -> Vec<lvs_api::ServiceReport> {
    let mut by_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in report.errors.iter().filter(|e| !is_node_error(e)) {
        if let Some(owner) = e.owner.as_deref() {
            by_owner.entry(owner).or_default().push(e.message.as_str());
        }
    }
    roles
        .iter()
        .map(|(name, role)| {
            let mut errors = by_owner.remove(name.as_str()).unwrap_or_default();
            errors.dedup();
            lvs_api::ServiceReport {
                name: name.clone(),
                generation: role.generation,
                roles: role.roles.iter().map(|r| r.to_string()).collect(),
                error: truncate(&errors.join("; "), MAX_REPORT_ERROR),
                ..Default::default()
            }
        })
        .collect()
}

/// The LvsNode status (without its sync time) for `services` (sorted by
/// name), `node_errors` and `unreadable` objects, bounded in size: node
/// errors and unreadable objects are capped at [`MAX_NODE_ERRORS`] each,
/// per-service error text at [`SERVICE_ERROR_BUDGET`] in total; while a
/// node error is listed, entries without an error of their own are left
/// out (every service counts as failed). What was cut or left out is
/// counted in `omittedErrors`. Destination entries are capped at
/// [`MAX_SERVICE_DESTINATIONS`] per service and [`MAX_DESTINATION_ENTRIES`]
/// in all, their errors cut at [`MAX_DESTINATION_ERROR`]; what was left out
/// is counted in `omittedDestinations`.
pub fn bounded_status(
    services: &[lvs_api::ServiceReport],
    node_errors: &[String],
    unreadable: &[String],
) -> lvs_api::LvsNodeStatus {
    let mut omitted = 0usize;
    let mut capped = |list: &[String]| -> Vec<String> {
        omitted += list.len().saturating_sub(MAX_NODE_ERRORS);
        list.iter()
            .take(MAX_NODE_ERRORS)
            .map(|e| truncate(e, MAX_REPORT_ERROR))
            .collect()
    };
    let node_errors = capped(node_errors);
    let unreadable = capped(unreadable);
    let node_failed = !node_errors.is_empty();
    let mut budget = SERVICE_ERROR_BUDGET;
    let mut listed = Vec::new();
    let mut failing = 0usize;
    let mut entries_left = MAX_DESTINATION_ENTRIES;
    let mut omitted_destinations = 0usize;
    let mut bound_destinations = |s: &lvs_api::ServiceReport| {
        let mut entry = s.clone();
        let keep = entry
            .destinations
            .len()
            .min(MAX_SERVICE_DESTINATIONS)
            .min(entries_left);
        omitted_destinations += entry.destinations.len() - keep;
        entries_left -= keep;
        entry.destinations.truncate(keep);
        for d in &mut entry.destinations {
            if d.last_error.len() > MAX_DESTINATION_ERROR {
                d.last_error = truncate(&d.last_error, MAX_DESTINATION_ERROR);
            }
        }
        entry
    };
    for s in services {
        if s.error.is_empty() {
            if !node_failed {
                listed.push(bound_destinations(s));
            }
            continue;
        }
        failing += 1;
        let mut entry = bound_destinations(s);
        if entry.error.len() <= budget {
            budget -= entry.error.len();
        } else {
            entry.error = ERROR_LEFT_OUT.to_string();
            omitted += 1;
        }
        listed.push(entry);
    }
    let errors = if node_failed { services.len() } else { failing };
    lvs_api::LvsNodeStatus {
        last_sync_time: None,
        programmed_count: u32::try_from(services.len() - errors).unwrap_or(u32::MAX),
        error_count: u32::try_from(errors).unwrap_or(u32::MAX),
        node_errors,
        unreadable,
        omitted_errors: u32::try_from(omitted).unwrap_or(u32::MAX),
        omitted_destinations: u32::try_from(omitted_destinations).unwrap_or(u32::MAX),
        omitted_live: 0,
        services: listed,
        vips: Vec::new(),
        refused: Vec::new(),
    }
}

/// The most JSON an LvsNode's status may take. The API server refuses a
/// request body over 3 MiB, and etcd by default a write over 1.5 MiB; the
/// rest of the object and the field manager's entry need room too.
pub const MAX_STATUS_BYTES: usize = 1 << 20;

/// Keeps `status` within [`MAX_STATUS_BYTES`] of JSON by taking the live
/// state (`counters`, `countersTime`, `tableHash`) out of service entries,
/// the last by name first, and counting them in `omittedLive`. The rest of
/// an entry is what the operator needs to call a VirtualService programmed
/// and stays: a status still too large after every entry gave up its live
/// state is returned as it is (the API server's refusal says why).
pub fn within_size(status: &mut lvs_api::LvsNodeStatus) {
    within_bytes(status, MAX_STATUS_BYTES);
}

/// [`within_size`] with the limit given.
pub fn within_bytes(status: &mut lvs_api::LvsNodeStatus, limit: usize) {
    let services = std::mem::take(&mut status.services);
    // `"services":[` and `]`, and a comma before it and between entries.
    let mut total = json_len(status) + 14 + services.len();
    status.services = services;
    total += status.services.iter().map(json_len).sum::<usize>();
    let mut shed = 0u32;
    for s in status.services.iter_mut().rev() {
        if total <= limit {
            break;
        }
        if s.counters.is_none() && s.counters_time.is_none() && s.table_hash.is_none() {
            continue;
        }
        let before = json_len(s);
        s.counters = None;
        s.counters_time = None;
        s.table_hash = None;
        total -= before - json_len(s);
        shed += 1;
    }
    status.omitted_live = shed;
}

/// The length of `v` as compact JSON, without writing it anywhere.
fn json_len<T: Serialize>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter fails only if serializing does, which these
    // plain data types never do.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Now in RFC 3339, to the second, as the API server writes times.
pub fn rfc3339_now() -> String {
    use k8s_openapi::jiff::Timestamp;
    let secs = Timestamp::now().as_second();
    Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| Timestamp::now().to_string())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests;

/// A director's view of one VirtualService's destinations: how many are
/// healthy, and each that is not (failing a health check, unready, draining,
/// inactive, or the sorry server), sorted by destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStates {
    pub healthy: u32,
    pub total: u32,
    pub entries: Vec<lvs_api::DestinationReport>,
}

impl DestinationStates {
    /// `total` destinations planned, all healthy so far.
    pub fn new(total: u32) -> Self {
        DestinationStates {
            healthy: total,
            total,
            entries: Vec::new(),
        }
    }

    /// Records a destination that is not simply healthy. A later note for
    /// the same destination replaces an earlier one.
    pub fn note(
        &mut self,
        d: &lvs_planner::PlannedDestination,
        state: lvs_api::DestinationState,
        last_error: String,
    ) {
        let destination = match d.addr {
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", d.port),
            a => format!("{a}:{}", d.port),
        };
        self.entries.retain(|e| e.destination != destination);
        self.entries.push(lvs_api::DestinationReport {
            destination,
            real_server: d.owner.to_string(),
            state,
            last_error,
            ..Default::default()
        });
    }

    /// Records a draining destination (weight 0 until its connections end
    /// or its deadline passes) with when it started (RFC 3339) and the
    /// connections it still waits for.
    pub fn note_draining(
        &mut self,
        d: &lvs_planner::PlannedDestination,
        since: String,
        connections: Option<u32>,
        last_error: String,
    ) {
        self.note(d, lvs_api::DestinationState::Draining, last_error);
        if let Some(e) = self.entries.last_mut() {
            e.since = Some(since);
            e.connections = connections;
        }
    }

    /// Gives each entry without a `since` the one of the same destination
    /// in the same state in `prev` (the states published before), or `now`
    /// when it just entered that state.
    pub fn carry_since(&mut self, prev: Option<&DestinationStates>, now: &str) {
        for e in self.entries.iter_mut().filter(|e| e.since.is_none()) {
            // Entries are sorted by destination, each destination once.
            let before = prev.and_then(|p| {
                let i = p
                    .entries
                    .binary_search_by(|x| x.destination.cmp(&e.destination))
                    .ok()?;
                Some(&p.entries[i]).filter(|x| x.state == e.state)
            });
            e.since = Some(
                before
                    .and_then(|b| b.since.clone())
                    .unwrap_or_else(|| now.to_string()),
            );
        }
    }

    /// Sorts the entries and counts the healthy destinations: those not
    /// failing, unready or inactive (draining ones and the sorry server are
    /// not among the `total` planned).
    pub fn finish(&mut self) {
        use lvs_api::DestinationState as S;
        self.entries.sort();
        let down = self
            .entries
            .iter()
            .filter(|e| matches!(e.state, S::Failing | S::Unready | S::Inactive))
            .count() as u32;
        self.healthy = self.total.saturating_sub(down);
    }
}

/// Whether a write of this kind (see `lvs_ipvs::Op::kind`) changes the IPVS
/// table.
pub fn changes_ipvs(kind: &str) -> bool {
    kind.starts_with("service_") || kind.starts_with("dest_")
}

/// A director's live view of one VirtualService: the kernel's counters of
/// its IPVS services, summed, and the hash of their programmed table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveState {
    pub counters: lvs_api::TrafficCounters,
    /// When the counters were read (RFC 3339); kept while they stay the
    /// same, so an idle service does not look changed.
    pub time: String,
    pub table_hash: String,
}

/// The counters of one IPVS service: its own traffic counters and rates,
/// and the connection counts of its destinations.
pub fn service_counters(e: &lvs_ipvs::ServiceEntry) -> lvs_api::TrafficCounters {
    let (active, inactive) = e.destinations.iter().fold((0u64, 0u64), |(a, i), d| {
        (
            a + u64::from(d.stats.active_conns),
            i + u64::from(d.stats.inactive_conns),
        )
    });
    counters(&e.stats, active, inactive)
}

/// The counters of one destination: its traffic counters, rates and
/// connection counts.
pub fn dest_counters(d: &lvs_ipvs::DestEntry) -> lvs_api::TrafficCounters {
    counters(
        &d.stats.traffic,
        u64::from(d.stats.active_conns),
        u64::from(d.stats.inactive_conns),
    )
}

/// The kernel's traffic counters and rates with the connection counts, as
/// the API writes them.
fn counters(s: &lvs_ipvs::Stats, active: u64, inactive: u64) -> lvs_api::TrafficCounters {
    lvs_api::TrafficCounters {
        active_connections: active,
        inactive_connections: inactive,
        connections: s.conns,
        in_packets: s.in_pkts,
        out_packets: s.out_pkts,
        in_bytes: s.in_bytes,
        out_bytes: s.out_bytes,
        cps: s.cps,
        in_pps: s.in_pps,
        out_pps: s.out_pps,
        in_bps: s.in_bps,
        out_bps: s.out_bps,
    }
}

/// One line per service and destination, with every setting the agent
/// programs and nothing the kernel counts: what [`table_hash`] covers.
fn table_lines(e: &lvs_ipvs::ServiceEntry, out: &mut String) {
    use std::fmt::Write as _;
    let c = &e.service.config;
    let _ = writeln!(
        out,
        "{} {} flags={:#x} timeout={} netmask={:#x} pe={}",
        crate::kernel::ServiceLabel(&e.service.key),
        c.scheduler,
        c.flags.bits(),
        c.timeout,
        c.netmask,
        c.pe_name.as_deref().unwrap_or("-"),
    );
    let mut dests: Vec<&lvs_ipvs::Destination> =
        e.destinations.iter().map(|d| &d.destination).collect();
    dests.sort_by_key(|d| d.key);
    for d in dests {
        let c = &d.config;
        let _ = write!(
            out,
            " -> {} {} weight={} u={} l={}",
            d.key,
            crate::reconcile::drift::method_name(c.fwd),
            c.weight,
            c.u_threshold,
            c.l_threshold
        );
        // Kernels report tunnel settings for every destination; they
        // matter only for tunnels (see `DestConfig::same_as`).
        if c.fwd == lvs_ipvs::FwdMethod::Tunnel {
            let _ = write!(
                out,
                " tun={}/{}/{}",
                c.tun_type.0, c.tun_port, c.tun_flags.0
            );
        }
        out.push('\n');
    }
}

/// A hash of `entries`' programmed settings (sorted by service key; see
/// [`table_lines`]), as 16 hex digits: FNV-1a, stable across builds and
/// hosts, so two directors of the same table show the same hash.
pub fn table_hash<'a>(entries: impl IntoIterator<Item = &'a lvs_ipvs::ServiceEntry>) -> String {
    use std::hash::Hasher as _;
    let mut sorted: Vec<&lvs_ipvs::ServiceEntry> = entries.into_iter().collect();
    sorted.sort_by_key(|e| e.service.key);
    let mut text = String::new();
    for e in sorted {
        table_lines(e, &mut text);
    }
    let mut h = fnv::FnvHasher::default();
    h.write(text.as_bytes());
    format!("{:016x}", h.finish())
}

/// Per VirtualService (the owner the ledger records), the summed counters
/// and the table hash of the owned services in `entries`. Services without
/// an owner in `ledger` are left out.
///
/// `hashes` keeps each VirtualService's table hash with a fingerprint of
/// the settings it covers: the text behind the hash is written again only
/// when the fingerprint changes, which a table at rest never does. Entries
/// of VirtualServices not in `entries` stay (`entries` can be a few
/// services, after a change); [`TableHashes::keep_only`] forgets those gone.
pub fn live_states(
    entries: &[lvs_ipvs::ServiceEntry],
    ledger: &crate::ledger::Ledger,
    now: &str,
    hashes: &mut TableHashes,
) -> BTreeMap<String, LiveState> {
    let mut b = LiveBuild::new(now.to_string());
    while !b.step(entries, ledger, hashes, Duration::MAX) {}
    b.into_live()
}

/// [`live_states`] in steps of bounded time, for a read of the whole table:
/// at 10k services the whole computation takes long enough on a slow CPU
/// that changes arriving meanwhile would wait for it. Each step is given
/// the same entries and ledger; the ledger may change between steps (a
/// service it no longer has is left out, as in [`live_states`]).
#[derive(Debug)]
pub struct LiveBuild {
    now: String,
    /// Entries grouped so far: `entries[..next]`.
    next: usize,
    index: HashMap<String, usize>,
    owners: Vec<Owned>,
    /// Owners turned into live states so far: `owners[..stated]`.
    stated: usize,
    out: Vec<(String, LiveState)>,
    busy: Duration,
}

#[derive(Debug)]
struct Owned {
    owner: String,
    counters: lvs_api::TrafficCounters,
    fingerprint: u64,
    /// Indexes into the entries.
    members: Vec<usize>,
}

/// How many entries or owners a step handles between looks at the clock.
const LIVE_BATCH: usize = 64;

impl LiveBuild {
    /// A build whose live states are stamped `now` (when the table was read).
    pub fn new(now: String) -> Self {
        LiveBuild {
            now,
            next: 0,
            index: HashMap::new(),
            owners: Vec::new(),
            stated: 0,
            out: Vec::new(),
            busy: Duration::ZERO,
        }
    }

    /// Works on the build for about `budget`; `true` once every live state
    /// is computed.
    pub fn step(
        &mut self,
        entries: &[lvs_ipvs::ServiceEntry],
        ledger: &crate::ledger::Ledger,
        hashes: &mut TableHashes,
        budget: Duration,
    ) -> bool {
        let started = Instant::now();
        let over = || started.elapsed() >= budget;
        while self.next < entries.len() {
            let end = (self.next + LIVE_BATCH).min(entries.len());
            for (i, e) in entries.iter().enumerate().take(end).skip(self.next) {
                let Some(o) = ledger.services.get(&e.service.key) else {
                    continue;
                };
                let at = match self.index.get(o.owner.as_str()) {
                    Some(at) => *at,
                    None => {
                        self.index.insert(o.owner.clone(), self.owners.len());
                        self.owners.push(Owned {
                            owner: o.owner.clone(),
                            counters: lvs_api::TrafficCounters::default(),
                            fingerprint: 0,
                            members: Vec::new(),
                        });
                        self.owners.len() - 1
                    }
                };
                let acc = &mut self.owners[at];
                acc.counters.add(&service_counters(e));
                acc.fingerprint = acc.fingerprint.wrapping_add(fingerprint(e));
                acc.members.push(i);
            }
            self.next = end;
            if over() {
                self.busy += started.elapsed();
                return false;
            }
        }
        while self.stated < self.owners.len() {
            let end = (self.stated + LIVE_BATCH).min(self.owners.len());
            for acc in &mut self.owners[self.stated..end] {
                let fp = acc.fingerprint;
                let table_hash = match hashes.0.get(&acc.owner) {
                    Some((f, h)) if *f == fp => h.clone(),
                    _ => {
                        let h = table_hash(acc.members.iter().map(|i| &entries[*i]));
                        hashes.0.insert(acc.owner.clone(), (fp, h.clone()));
                        h
                    }
                };
                let state = LiveState {
                    counters: std::mem::take(&mut acc.counters),
                    time: self.now.clone(),
                    table_hash,
                };
                self.out.push((std::mem::take(&mut acc.owner), state));
            }
            self.stated = end;
            if self.stated < self.owners.len() && over() {
                self.busy += started.elapsed();
                return false;
            }
        }
        self.busy += started.elapsed();
        true
    }

    /// The time the steps took so far.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// The live states, once [`LiveBuild::step`] returned `true`.
    pub fn into_live(self) -> BTreeMap<String, LiveState> {
        self.out.into_iter().collect()
    }
}

/// Per VirtualService, the last table hash and the fingerprint of what it
/// covered (see [`live_states`]).
#[derive(Debug, Default)]
pub struct TableHashes(std::collections::HashMap<String, (u64, String)>);

impl TableHashes {
    /// Forgets the hashes of VirtualServices not in `live` (the live
    /// states of a read of the whole table).
    pub fn keep_only(&mut self, live: &BTreeMap<String, LiveState>) {
        self.0.retain(|owner, _| live.contains_key(owner));
    }
}

/// A hash of a service's key and settings and its destinations' keys and
/// settings, whatever their order; summed over a VirtualService's services
/// (in any order), equal whenever [`table_hash`]'s text is (it covers at
/// least as much), cheap to compute.
fn fingerprint(e: &lvs_ipvs::ServiceEntry) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let one = |f: &dyn Fn(&mut fnv::FnvHasher)| {
        let mut h = fnv::FnvHasher::default();
        f(&mut h);
        h.finish()
    };
    let mut sum = one(&|h| {
        e.service.key.hash(h);
        e.service.config.hash(h);
    });
    for d in &e.destinations {
        sum = sum.wrapping_add(one(&|h| {
            e.service.key.hash(h);
            d.destination.hash(h);
        }));
    }
    sum
}

/// Takes a new sample into `live`: an entry whose counters and hash are
/// unchanged keeps its time. `true` when anything changed (an entry came,
/// went, or has other counters or another hash).
pub fn merge_live(
    live: &mut BTreeMap<String, LiveState>,
    new: BTreeMap<String, LiveState>,
) -> bool {
    let mut changed = live.len() != new.len();
    let mut out = BTreeMap::new();
    for (name, mut s) in new {
        match live.remove(&name) {
            Some(old) if old.counters == s.counters && old.table_hash == s.table_hash => {
                s.time = old.time;
            }
            _ => changed = true,
        }
        out.insert(name, s);
    }
    changed |= !live.is_empty();
    *live = out;
    changed
}

/// At most this many entries of a drift are listed in an LvsNode (and an
/// Event); `count` has them all.
pub const MAX_DRIFT_ENTRIES: usize = 8;

/// Per VirtualService, the drift a sync repaired, as the LvsNode reports
/// it (see [`MAX_DRIFT_ENTRIES`]).
pub fn drift_reports(
    drift: &[crate::reconcile::drift::Drift],
    now: &str,
) -> BTreeMap<String, lvs_api::DriftReport> {
    let mut out: BTreeMap<String, lvs_api::DriftReport> = BTreeMap::new();
    for d in drift {
        let r = out
            .entry(d.owner.clone())
            .or_insert_with(|| lvs_api::DriftReport {
                time: now.to_string(),
                ..Default::default()
            });
        r.count = r.count.saturating_add(1);
        if r.repaired.len() < MAX_DRIFT_ENTRIES {
            r.repaired.push(truncate(&d.what, MAX_DESTINATION_ERROR));
        }
    }
    out
}

/// Copies the live states and last drifts of the services this node
/// directs into their reports.
pub fn with_live(
    reports: &mut [lvs_api::ServiceReport],
    live: &BTreeMap<String, LiveState>,
    drift: &BTreeMap<String, lvs_api::DriftReport>,
) {
    for r in reports.iter_mut() {
        if let Some(l) = live.get(&r.name) {
            r.counters = Some(l.counters.clone());
            r.counters_time = Some(l.time.clone());
            r.table_hash = Some(l.table_hash.clone());
        }
        r.drift = drift.get(&r.name).cloned();
    }
}
