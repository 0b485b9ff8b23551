//! Answers to LvsSnapshot requests: the kernel's IPVS table as read now
//! ([`crate::reconcile::LiveView`]) rendered the way `ipvsadm -Ln` shows
//! it, bounded in size, and when to answer the next request.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lvs_api::{
    LiveDestination, LiveService, LvsSnapshotStatus, MAX_SNAPSHOT_CHANGES,
    MAX_SNAPSHOT_DESTINATIONS,
};
use lvs_ipvs::{
    DestEntry, Family, FwdMethod, ServiceEntry, ServiceFlags, ServiceKey, TunnelFlags, TunnelType,
};

use crate::reconcile::LiveView;
use crate::reconcile::describe::ServiceName;

/// The shortest time between two answers (the default of
/// `--snapshot-min-interval`).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The lowest `--snapshot-min-interval` allowed.
pub const MIN_INTERVAL_FLOOR: Duration = Duration::from_millis(200);

/// `ipvsadm -Ln`'s order: by family, protocol, address, port; firewall
/// marks last (by family, mark).
fn order(k: &ServiceKey) -> (u8, Family, u16, Option<IpAddr>, u32) {
    match *k {
        ServiceKey::Tuple {
            addr,
            protocol,
            port,
        } => (
            0,
            Family::of(&addr),
            protocol.0,
            Some(addr),
            u32::from(port),
        ),
        ServiceKey::Fwmark { family, mark } => (1, family, 0, None, mark),
    }
}

/// Scheduler and service flags as ipvsadm names them.
pub fn flag_names(scheduler: &str, flags: ServiceFlags) -> Vec<String> {
    let sched = [
        (ServiceFlags::SCHED1, "fallback", "flag-1"),
        (ServiceFlags::SCHED2, "port", "flag-2"),
        (ServiceFlags::SCHED3, "", "flag-3"),
    ];
    let mut out: Vec<String> = sched
        .iter()
        .filter(|(f, _, _)| flags.contains(*f))
        .map(|(_, named, plain)| match scheduler {
            "sh" | "mh" if !named.is_empty() => format!("{scheduler}-{named}"),
            _ => (*plain).to_string(),
        })
        .collect();
    if flags.contains(ServiceFlags::ONE_PACKET) {
        out.push("ops".into());
    }
    out
}

/// The tunnel of a Tunnel destination ("ipip", "gue port 6080", "gre
/// csum"); empty for other methods.
fn tunnel_text(d: &DestEntry) -> String {
    let c = &d.destination.config;
    if c.fwd != FwdMethod::Tunnel {
        return String::new();
    }
    let mut t = match c.tun_type {
        TunnelType::IPIP => "ipip".to_string(),
        TunnelType::GUE => format!("gue port {}", c.tun_port),
        TunnelType::GRE => "gre".to_string(),
        TunnelType(n) => format!("type-{n}"),
    };
    if c.tun_type != TunnelType::IPIP {
        if c.tun_flags.0 & TunnelFlags::CSUM.0 != 0 {
            t.push_str(" csum");
        }
        if c.tun_flags.0 & TunnelFlags::REMCSUM.0 != 0 {
            t.push_str(" remcsum");
        }
    }
    t
}

fn live_destination(d: &DestEntry) -> LiveDestination {
    let c = &d.destination.config;
    LiveDestination {
        destination: d.destination.key.to_string(),
        method: c.fwd.to_string(),
        weight: i32::try_from(c.weight).unwrap_or(i32::MAX),
        upper_threshold: c.u_threshold,
        lower_threshold: c.l_threshold,
        tunnel: tunnel_text(d),
        counters: crate::report::dest_counters(d),
    }
}

fn live_service(e: &ServiceEntry, owner: &str) -> LiveService {
    let c = &e.service.config;
    let persistent = c.flags.contains(ServiceFlags::PERSISTENT);
    let netmask = persistent.then(|| match e.service.key.family() {
        Family::V4 => Ipv4Addr::from(c.netmask).to_string(),
        Family::V6 => c.netmask.to_string(),
    });
    LiveService {
        service: ServiceName(&e.service.key).to_string(),
        owner: owner.to_string(),
        scheduler: c.scheduler.clone(),
        flags: flag_names(&c.scheduler, c.flags),
        persistence: persistent.then_some(c.timeout),
        netmask,
        counters: crate::report::service_counters(e),
        destinations: Vec::new(),
    }
}

/// The answer to a request for `view`: the services of the VirtualServices
/// in `only` (every service when empty, foreign ones included), sorted as
/// `ipvsadm -Ln` sorts them, destinations by address and port. At most
/// [`MAX_SNAPSHOT_DESTINATIONS`] entries (services and destinations
/// together) are listed: the destinations left out are counted, and so
/// are those of the services left out whole. `time`: when the kernel was
/// read.
pub fn status(view: &LiveView, only: &[String], time: String) -> LvsSnapshotStatus {
    let mut entries: Vec<(&ServiceEntry, &str)> = view
        .entries
        .iter()
        .map(|e| {
            let owner = view.owners.get(&e.service.key).map_or("", String::as_str);
            (e, owner)
        })
        .filter(|(_, owner)| only.is_empty() || only.iter().any(|o| o == owner))
        .collect();
    entries.sort_by_key(|(e, _)| order(&e.service.key));
    let mut budget = MAX_SNAPSHOT_DESTINATIONS;
    let mut omitted: usize = 0;
    let mut services = Vec::new();
    for (e, owner) in entries {
        if budget == 0 {
            omitted += e.destinations.len();
            continue;
        }
        budget -= 1;
        let mut s = live_service(e, owner);
        let mut dests: Vec<&DestEntry> = e.destinations.iter().collect();
        dests.sort_by_key(|d| d.destination.key);
        let take = dests.len().min(budget);
        omitted += dests.len() - take;
        budget -= take;
        s.destinations = dests[..take].iter().map(|d| live_destination(d)).collect();
        services.push(s);
    }
    let (changes, omitted_changes) = match &view.changes {
        Some(c) => (
            c.iter().take(MAX_SNAPSHOT_CHANGES).cloned().collect(),
            c.len().saturating_sub(MAX_SNAPSHOT_CHANGES),
        ),
        None => (Vec::new(), 0),
    };
    LvsSnapshotStatus {
        time,
        error: if view.ipvs_available {
            String::new()
        } else {
            "IPVS is not available in this node's kernel".into()
        },
        services,
        omitted_destinations: u32::try_from(omitted).unwrap_or(u32::MAX),
        changes,
        omitted_changes: u32::try_from(omitted_changes).unwrap_or(u32::MAX),
        ..LvsSnapshotStatus::default()
    }
}

/// Now in RFC 3339 with milliseconds.
pub fn rfc3339_millis_now() -> String {
    use k8s_openapi::jiff::{Timestamp, Unit};
    let now = Timestamp::now();
    let t = now.round(Unit::Millisecond).unwrap_or(now);
    format!("{t:.3}")
}

/// The token to answer: `spec.request` when it is set, not answered in
/// the status, and not answered by this agent already (`answered`: the
/// last token it wrote; the watch may still show the object as it was
/// before that write).
pub fn unanswered<'a>(
    request: &'a str,
    status_request: Option<&str>,
    answered: Option<&str>,
) -> Option<&'a str> {
    (!request.is_empty() && Some(request) != status_request && Some(request) != answered)
        .then_some(request)
}

/// When the next answer may go out: at once, or `min` after the last one.
/// Requests arriving in between wait, and only the newest is answered.
pub fn answer_at(last: Option<Instant>, min: Duration, now: Instant) -> Instant {
    last.map_or(now, |l| (l + min).max(now))
}

#[cfg(test)]
mod tests;
