//! Who holds each VIP: a pure decision from what the agent observed.
//!
//! The Leases are the source of truth and are written only on a takeover or
//! a handoff (optimistic concurrency on their resourceVersion makes each
//! write exclusive); this module decides which writes to attempt and the
//! role of this node for each VIP, from one observation. It does no I/O, so
//! the failure matrix is a table of tests.
//!
//! - A VIP is held by the node its Lease names while that node's heartbeat
//!   is fresh and it is still a candidate.
//! - Otherwise the preferred owner among the live candidates takes it over,
//!   but only when the holder also fails a direct probe (or does not claim
//!   the VIP): an active cut off from the API server still answers and keeps
//!   the VIP, so two nodes never hold it at once.
//! - Without the API server nothing can be written, so every role stays as
//!   the Leases last seen say: actives keep serving, and an active that
//!   sees another node in its VIP's Lease drops the VIP even then.
//! - An active whose VIP has another preferred owner hands it over, but
//!   only once that owner has been live for the preempt delay without a
//!   break: a flapping director does not pull its VIPs back and forth.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub use lvs_api::DirectorRole as Role;

/// What a VIP's Lease says, as last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipLease {
    /// The node holding the VIP; `None`: nobody (released, or just created).
    pub holder: Option<String>,
    /// The version read: a write carries it, so it fails when someone else
    /// wrote in between.
    pub resource_version: Option<String>,
    pub transitions: i32,
}

/// The answer of a node to the direct probe over the node network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// It answered with the VIPs it holds.
    Active(BTreeSet<IpAddr>),
    /// No answer within the timeout (or not a valid one).
    Unreachable,
}

/// One observation of the world.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// VIP -> its candidates (sorted node names, this node among them).
    pub candidates: BTreeMap<IpAddr, Vec<String>>,
    /// Nodes whose heartbeat the observer saw renewed within the lease
    /// duration (this node included while its own renewals show up).
    pub live: BTreeSet<String>,
    /// The live nodes whose heartbeat has been fresh without a break for at
    /// least the preempt delay (this node included on the same terms). The
    /// preferred owners are chosen among these; a VIP with none of its
    /// candidates here falls back to its live candidates.
    pub settled: BTreeSet<String>,
    /// VIP Leases as last read; a VIP without one has no holder.
    pub leases: BTreeMap<IpAddr, VipLease>,
    /// Probe answers of nodes whose heartbeat expired; a node missing here
    /// has not been probed yet.
    pub probes: BTreeMap<String, ProbeAnswer>,
    /// Whether the API server can be reached (the last heartbeat renewal
    /// succeeded). Without it no Lease can be written.
    pub api_ok: bool,
}

/// Why a Lease is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// This node takes the VIP.
    Takeover,
    /// This node gives the VIP it holds to its preferred owner.
    Handoff,
}

/// A VIP Lease write: set the holder, conditional on the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWrite {
    pub vip: IpAddr,
    pub holder: String,
    /// `None`: create the Lease (it must not exist yet).
    pub resource_version: Option<String>,
    pub transitions: i32,
    pub kind: WriteKind,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// This node's role for each VIP it is a candidate for.
    pub roles: BTreeMap<IpAddr, Role>,
    /// Lease writes to attempt. A takeover makes this node active only once
    /// its write succeeded (the next decision sees it as the holder).
    pub writes: Vec<LeaseWrite>,
    /// Nodes to probe before a takeover can be decided.
    pub probe: BTreeSet<String>,
}

/// The role of `me` for every VIP it is a candidate for, and the writes to
/// make. `previous`: the roles of the last decision (kept while the API
/// server is away).
pub fn decide(me: &str, seen: &Observed, previous: &BTreeMap<IpAddr, Role>) -> Decision {
    let mut out = Decision::default();
    let mine = seen
        .candidates
        .iter()
        .filter(|(_, c)| c.iter().any(|n| n == me));
    if !seen.api_ok {
        // Nothing can be written, so nothing is taken over or handed over.
        // A VIP whose Lease names another node is dropped all the same (its
        // holder took it while this node could not renew: holding it too
        // would be a split brain); one that names this node stays held,
        // whatever the API server's state: actives keep serving.
        for (vip, _) in mine {
            let role = match seen.leases.get(vip).and_then(|l| l.holder.as_deref()) {
                Some(h) if h == me => Role::Active,
                Some(_) => Role::Standby,
                None => previous.get(vip).copied().unwrap_or(Role::Standby),
            };
            out.roles.insert(*vip, role);
        }
        return out;
    }
    let preferred = preferred_owners(&seen.candidates, &seen.live, &seen.settled, me);
    for (vip, candidates) in mine {
        let lease = seen.leases.get(vip).cloned().unwrap_or_default();
        let want = preferred.get(vip).map(String::as_str);
        let write = |holder: &str, kind| LeaseWrite {
            vip: *vip,
            holder: holder.to_string(),
            resource_version: lease.resource_version.clone(),
            transitions: lease.transitions + 1,
            kind,
        };
        let role = match lease.holder.as_deref() {
            Some(h) if h == me => {
                // Handed over only to a settled node (live for the whole
                // preempt delay), never to one that just came (back).
                if let Some(p) = want.filter(|p| *p != me && seen.settled.contains(*p)) {
                    out.writes.push(write(p, WriteKind::Handoff));
                }
                Role::Active
            }
            holder => {
                let valid_holder = holder.filter(|h| candidates.iter().any(|c| c == h));
                let holder_live = valid_holder.is_some_and(|h| seen.live.contains(h));
                if !holder_live && want == Some(me) {
                    let may_take = match valid_holder {
                        None => true,
                        Some(h) => match seen.probes.get(h) {
                            None => {
                                out.probe.insert(h.to_string());
                                false
                            }
                            Some(ProbeAnswer::Unreachable) => true,
                            Some(ProbeAnswer::Active(held)) => !held.contains(vip),
                        },
                    };
                    if may_take {
                        out.writes.push(write(me, WriteKind::Takeover));
                    }
                }
                Role::Standby
            }
        };
        out.roles.insert(*vip, role);
    }
    out
}

/// The fellow candidates of `me` (for any VIP it is a candidate for) that
/// are live but not yet settled, sorted: see [`super::Elected::settling`].
pub fn settling(me: &str, seen: &Observed) -> Vec<String> {
    let peers: BTreeSet<&String> = seen
        .candidates
        .values()
        .filter(|c| c.iter().any(|n| n == me))
        .flatten()
        .filter(|n| *n != me && seen.live.contains(*n) && !seen.settled.contains(*n))
        .collect();
    peers.into_iter().cloned().collect()
}

/// The preferred owner of each VIP among its settled candidates (else, when
/// none is settled, its live ones): the VIPs in the order of a stable hash,
/// each to the candidate with the fewest VIPs so far (ties to the highest
/// rendezvous hash of VIP and node), so the VIPs spread evenly and every
/// node computes the same answer from the same observation. `me` counts as
/// live and settled (its own view of itself: a holder whose own heartbeat
/// lapsed in its view, a slow API server, must not hand everything over to
/// the others for that).
pub fn preferred_owners(
    candidates: &BTreeMap<IpAddr, Vec<String>>,
    live: &BTreeSet<String>,
    settled: &BTreeSet<String>,
    me: &str,
) -> BTreeMap<IpAddr, String> {
    let mut order: Vec<(u64, &IpAddr)> = candidates
        .keys()
        .map(|v| (fnv1a(v.to_string().as_bytes()), v))
        .collect();
    order.sort();
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (_, vip) in order {
        let is_live = |n: &&String| live.contains(*n) || *n == me;
        let pool: Vec<&String> = match candidates[vip]
            .iter()
            .filter(|n| is_live(n) && (settled.contains(*n) || *n == me))
            .collect::<Vec<_>>()
        {
            s if s.is_empty() => candidates[vip].iter().filter(is_live).collect(),
            s => s,
        };
        let best = pool.into_iter().min_by_key(|n| {
            let l = load.get(n.as_str()).copied().unwrap_or(0);
            (l, std::cmp::Reverse(rendezvous(vip, n)))
        });
        if let Some(n) = best {
            *load.entry(n.as_str()).or_default() += 1;
            out.insert(*vip, n.clone());
        }
    }
    out
}

fn rendezvous(vip: &IpAddr, node: &str) -> u64 {
    fnv1a(format!("{vip}/{node}").as_bytes())
}

/// FNV-1a, 64 bits: fixed across platforms and compiler versions (unlike
/// the standard library's hasher), so agents of different builds agree.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nodes(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn world(vips: &[&str], cands: &[&str], live: &[&str]) -> Observed {
        Observed {
            candidates: vips.iter().map(|v| (ip(v), nodes(cands))).collect(),
            live: live.iter().map(|s| s.to_string()).collect(),
            // No preempt delay: every live node is settled.
            settled: live.iter().map(|s| s.to_string()).collect(),
            api_ok: true,
            ..Default::default()
        }
    }

    fn held(o: &mut Observed, vip: &str, holder: &str) {
        o.leases.insert(
            ip(vip),
            VipLease {
                holder: Some(holder.into()),
                resource_version: Some("7".into()),
                transitions: 1,
            },
        );
    }

    /// Every node decides on the shared Leases, the writes succeed in order
    /// (a later write on a version already overwritten fails, as with the
    /// API server), until nobody writes; returns each node's roles.
    fn settle(o: &mut Observed, who: &[&str]) -> BTreeMap<String, BTreeMap<IpAddr, Role>> {
        let mut roles = BTreeMap::new();
        for round in 0..20 {
            let mut wrote = false;
            for me in who {
                let prev = roles.get(*me).cloned().unwrap_or_default();
                let d = decide(me, o, &prev);
                for w in d.writes {
                    let cur = o.leases.get(&w.vip).cloned().unwrap_or_default();
                    if cur.resource_version == w.resource_version {
                        o.leases.insert(
                            w.vip,
                            VipLease {
                                holder: Some(w.holder),
                                resource_version: Some(format!("{round}-{me}")),
                                transitions: w.transitions,
                            },
                        );
                        wrote = true;
                    }
                }
                roles.insert(me.to_string(), d.roles);
            }
            if !wrote {
                return roles;
            }
        }
        panic!("the Leases did not settle: {:?}", o.leases);
    }

    fn actives(roles: &BTreeMap<IpAddr, Role>) -> usize {
        roles.values().filter(|r| **r == Role::Active).count()
    }

    #[test]
    fn a_single_director_takes_its_vip() {
        let mut o = world(&["10.0.0.10"], &["a"], &["a"]);
        let d = decide("a", &o, &BTreeMap::new());
        assert_eq!(d.roles[&ip("10.0.0.10")], Role::Standby);
        assert_eq!(d.writes.len(), 1);
        assert_eq!(d.writes[0].kind, WriteKind::Takeover);
        assert_eq!(d.writes[0].resource_version, None, "created");
        let roles = settle(&mut o, &["a"]);
        assert_eq!(roles["a"][&ip("10.0.0.10")], Role::Active);
    }

    #[test]
    fn two_directors_spread_ten_vips_and_each_vip_has_one_active() {
        let vips: Vec<String> = (10..20).map(|i| format!("10.0.0.{i}")).collect();
        let v: Vec<&str> = vips.iter().map(String::as_str).collect();
        let mut o = world(&v, &["a", "b"], &["a", "b"]);
        let roles = settle(&mut o, &["a", "b"]);
        let (na, nb) = (actives(&roles["a"]), actives(&roles["b"]));
        assert_eq!(na + nb, 10, "{roles:?}");
        assert!(na <= 6 && nb <= 6, "{na}/{nb}");
        for vip in &v {
            let n = ["a", "b"]
                .iter()
                .filter(|m| roles[**m][&ip(vip)] == Role::Active)
                .count();
            assert_eq!(n, 1, "{vip}");
        }
    }

    #[test]
    fn a_node_joining_late_gets_its_share_by_handoff() {
        let vips: Vec<String> = (10..20).map(|i| format!("10.0.0.{i}")).collect();
        let v: Vec<&str> = vips.iter().map(String::as_str).collect();
        let mut o = world(&v, &["a", "b"], &["a"]);
        let roles = settle(&mut o, &["a"]);
        assert_eq!(actives(&roles["a"]), 10, "b is not live yet");
        o.live.insert("b".into());
        o.settled.insert("b".into());
        let d = decide("a", &o, &roles["a"]);
        assert!(
            d.writes
                .iter()
                .all(|w| w.kind == WriteKind::Handoff && w.holder == "b")
        );
        assert!((4..=6).contains(&d.writes.len()), "{:?}", d.writes);
        let roles = settle(&mut o, &["a", "b"]);
        let (na, nb) = (actives(&roles["a"]), actives(&roles["b"]));
        assert_eq!(na + nb, 10);
        assert!(na <= 6 && nb <= 6, "{na}/{nb}");
    }

    #[test]
    fn holder_expired_and_probe_fails_means_takeover() {
        let mut o = world(&["10.0.0.10"], &["a", "b"], &["b"]);
        held(&mut o, "10.0.0.10", "a");
        let d = decide("b", &o, &BTreeMap::new());
        assert!(d.writes.is_empty(), "not before a probe");
        assert_eq!(d.probe, BTreeSet::from(["a".to_string()]));
        assert_eq!(d.roles[&ip("10.0.0.10")], Role::Standby);
        o.probes.insert("a".into(), ProbeAnswer::Unreachable);
        let d = decide("b", &o, &BTreeMap::new());
        assert_eq!(
            d.writes,
            vec![LeaseWrite {
                vip: ip("10.0.0.10"),
                holder: "b".into(),
                resource_version: Some("7".into()),
                transitions: 2,
                kind: WriteKind::Takeover,
            }]
        );
        let roles = settle(&mut o, &["b"]);
        assert_eq!(roles["b"][&ip("10.0.0.10")], Role::Active);
    }

    #[test]
    fn holder_expired_but_answering_the_probe_keeps_the_vip() {
        // The active is cut off from the API server, not from the network.
        let mut o = world(&["10.0.0.10"], &["a", "b"], &["b"]);
        held(&mut o, "10.0.0.10", "a");
        o.probes.insert(
            "a".into(),
            ProbeAnswer::Active(BTreeSet::from([ip("10.0.0.10")])),
        );
        let d = decide("b", &o, &BTreeMap::new());
        assert!(d.writes.is_empty(), "{:?}", d.writes);
        assert_eq!(d.roles[&ip("10.0.0.10")], Role::Standby);
        // An answer that does not claim the VIP is no reason to wait.
        o.probes
            .insert("a".into(), ProbeAnswer::Active(BTreeSet::new()));
        assert_eq!(decide("b", &o, &BTreeMap::new()).writes.len(), 1);
    }

    #[test]
    fn without_the_api_server_roles_stay_and_nothing_is_written() {
        let mut o = world(&["10.0.0.10", "10.0.0.11"], &["a", "b"], &[]);
        o.api_ok = false;
        held(&mut o, "10.0.0.11", "b");
        let prev = BTreeMap::from([(ip("10.0.0.10"), Role::Active)]);
        let d = decide("a", &o, &prev);
        assert!(d.writes.is_empty() && d.probe.is_empty());
        assert_eq!(d.roles[&ip("10.0.0.10")], Role::Active);
        assert_eq!(d.roles[&ip("10.0.0.11")], Role::Standby);
        // a held 10.0.0.11 too, but the Lease (seen through the watch while
        // its own renewals fail) names b: a drops it, writing nothing.
        let prev = BTreeMap::from([
            (ip("10.0.0.10"), Role::Active),
            (ip("10.0.0.11"), Role::Active),
        ]);
        let d = decide("a", &o, &prev);
        assert!(d.writes.is_empty());
        assert_eq!(d.roles[&ip("10.0.0.11")], Role::Standby);
        // A Lease naming a keeps it active, whatever the previous role.
        held(&mut o, "10.0.0.10", "a");
        let d = decide("a", &o, &BTreeMap::new());
        assert_eq!(d.roles[&ip("10.0.0.10")], Role::Active);
    }

    #[test]
    fn settling_lists_the_live_unsettled_fellow_candidates_only() {
        let mut o = world(&["10.0.0.1"], &["a", "b", "c"], &["a", "b", "c"]);
        o.candidates.insert(ip("10.0.0.2"), nodes(&["d", "e"]));
        o.live.extend(["d".to_string(), "e".to_string()]);
        o.settled = ["a".to_string()].into_iter().collect();
        // d and e are no candidates of a VIP of a's: not listed.
        assert_eq!(settling("a", &o), nodes(&["b", "c"]));
        o.settled.insert("b".into());
        assert_eq!(settling("a", &o), nodes(&["c"]));
        // A node that is not live is not settling (it is gone).
        o.live.remove("c");
        assert!(settling("a", &o).is_empty());
        // `me` itself is never listed.
        assert_eq!(
            settling("b", &{
                let mut p = o.clone();
                p.settled.clear();
                p
            }),
            nodes(&["a"])
        );
    }

    #[test]
    fn an_active_hands_over_to_the_live_preferred_owner_then_drops() {
        let mut o = world(&["10.0.0.10", "10.0.0.11"], &["a", "b"], &["a", "b"]);
        held(&mut o, "10.0.0.10", "a");
        held(&mut o, "10.0.0.11", "a");
        let d = decide("a", &o, &BTreeMap::new());
        assert_eq!(d.writes.len(), 1, "{:?}", d.writes);
        let w = &d.writes[0];
        assert_eq!((w.kind, w.holder.as_str()), (WriteKind::Handoff, "b"));
        // Active until the handoff is written; standby once the Lease names b.
        assert_eq!(d.roles[&w.vip], Role::Active);
        held(&mut o, &w.vip.to_string(), "b");
        let d = decide("a", &o, &d.roles);
        assert!(d.writes.is_empty());
        assert_eq!(d.roles[&w.vip], Role::Standby);
        assert_eq!(
            decide("b", &o, &BTreeMap::new()).roles[&w.vip],
            Role::Active
        );
    }

    #[test]
    fn a_holder_that_is_no_candidate_is_replaced_without_a_probe() {
        let mut o = world(&["10.0.0.10"], &["b"], &["b", "old"]);
        held(&mut o, "10.0.0.10", "old");
        let d = decide("b", &o, &BTreeMap::new());
        assert!(d.probe.is_empty());
        assert_eq!(d.writes.len(), 1);
        assert_eq!(d.writes[0].kind, WriteKind::Takeover);
    }

    #[test]
    fn a_live_holder_is_left_alone_and_only_the_preferred_standby_takes_over() {
        let mut o = world(&["10.0.0.10"], &["a", "b", "c"], &["a", "b", "c"]);
        held(&mut o, "10.0.0.10", "a");
        let p = preferred_owners(&o.candidates, &o.live, &o.settled, "b");
        for me in ["b", "c"] {
            let d = decide(me, &o, &BTreeMap::new());
            assert_eq!(d.roles[&ip("10.0.0.10")], Role::Standby);
            if p[&ip("10.0.0.10")] == "a" {
                assert!(d.writes.is_empty());
            }
        }
        // a dies: of b and c, exactly one (the preferred one) acts.
        o.live.remove("a");
        o.probes.insert("a".into(), ProbeAnswer::Unreachable);
        let acting: Vec<_> = ["b", "c"]
            .into_iter()
            .filter(|m| !decide(m, &o, &BTreeMap::new()).writes.is_empty())
            .collect();
        assert_eq!(acting.len(), 1, "{acting:?}");
    }

    #[test]
    fn the_preferred_owner_is_stable_and_the_same_for_every_observer() {
        let c: BTreeMap<IpAddr, Vec<String>> = (0..8)
            .map(|i| (ip(&format!("10.0.1.{i}")), nodes(&["a", "b", "c"])))
            .collect();
        let live: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let pa = preferred_owners(&c, &live, &live, "a");
        assert_eq!(pa, preferred_owners(&c, &live, &live, "c"));
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for n in pa.values() {
            *per.entry(n.as_str()).or_default() += 1;
        }
        assert!(per.values().all(|n| (2..=3).contains(n)), "{per:?}");
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a test vector");
    }

    /// The preempt delay, as a table: the VIPs `b` prefers stay on `a`, which
    /// took them while `b` was away, until `b` has been live for the whole
    /// delay (`b` in `settled`); then `a` hands them back.
    #[test]
    fn a_recovered_preferred_owner_gets_its_vips_back_only_once_settled() {
        let vips: Vec<String> = (10..20).map(|i| format!("10.0.0.{i}")).collect();
        let v: Vec<&str> = vips.iter().map(String::as_str).collect();
        let mut o = world(&v, &["a", "b"], &["a"]);
        let roles = settle(&mut o, &["a"]);
        assert_eq!(actives(&roles["a"]), 10);
        // (b live, b settled, handoffs a writes)
        let rows: [(bool, bool, bool); 4] = [
            (false, false, false), // b away
            (true, false, false),  // b back, within the delay
            (false, false, false), // b flapped away again: the delay restarts
            (true, true, true),    // b live for the whole delay
        ];
        for (live, settled, hands_off) in rows {
            o.live = ["a".to_string()].into();
            o.settled = ["a".to_string()].into();
            if live {
                o.live.insert("b".into());
            }
            if settled {
                o.settled.insert("b".into());
            }
            let d = decide("a", &o, &roles["a"]);
            assert_eq!(
                !d.writes.is_empty(),
                hands_off,
                "b live {live} settled {settled}: {:?}",
                d.writes
            );
            assert!(d.writes.iter().all(|w| w.kind == WriteKind::Handoff));
            assert_eq!(
                actives(&d.roles),
                10,
                "a stays active until b holds the Lease"
            );
            // b never takes a VIP a holds while a is live.
            assert!(decide("b", &o, &BTreeMap::new()).writes.is_empty());
        }
        let roles = settle(&mut o, &["a", "b"]);
        let (na, nb) = (actives(&roles["a"]), actives(&roles["b"]));
        assert!(na + nb == 10 && na <= 6 && nb <= 6, "{na}/{nb}");
    }

    #[test]
    fn at_startup_every_vip_is_taken_and_the_spread_follows_the_preempt_delay() {
        // Both just started: nobody is settled in anybody's view. Every VIP
        // gets one holder at once; the even spread comes by handoffs once
        // the other node is settled.
        let vips: Vec<String> = (10..20).map(|i| format!("10.0.0.{i}")).collect();
        let v: Vec<&str> = vips.iter().map(String::as_str).collect();
        let mut o = world(&v, &["a", "b"], &["a", "b"]);
        o.settled.clear();
        let roles = settle(&mut o, &["a", "b"]);
        assert_eq!(actives(&roles["a"]) + actives(&roles["b"]), 10);
        o.settled = ["a".to_string(), "b".to_string()].into();
        let roles = settle(&mut o, &["a", "b"]);
        let (na, nb) = (actives(&roles["a"]), actives(&roles["b"]));
        assert!(na + nb == 10 && na <= 6 && nb <= 6, "{na}/{nb}");
    }

    #[test]
    fn an_orphaned_vip_goes_to_a_settled_candidate_over_a_fresh_one() {
        let mut o = world(&["10.0.0.10"], &["a", "b", "c"], &["b", "c"]);
        o.settled = ["b".to_string()].into();
        held(&mut o, "10.0.0.10", "a");
        o.probes.insert("a".into(), ProbeAnswer::Unreachable);
        let d = decide("b", &o, &BTreeMap::new());
        assert_eq!(d.writes.len(), 1);
        assert_eq!(d.writes[0].kind, WriteKind::Takeover);
        // c counts itself settled and may try too: the Lease's version lets
        // one write win, and the VIP ends with one holder.
        let roles = settle(&mut o, &["b", "c"]);
        let n = ["b", "c"]
            .iter()
            .filter(|m| roles[**m][&ip("10.0.0.10")] == Role::Active)
            .count();
        assert_eq!(n, 1, "{roles:?}");
    }

    #[test]
    fn a_holder_unsettled_in_its_own_view_keeps_its_vips() {
        // a's own heartbeat lapsed in its own view (a slow API server) and
        // came back: a is not settled, b is. a hands nothing over for that.
        let vips: Vec<String> = (10..20).map(|i| format!("10.0.0.{i}")).collect();
        let v: Vec<&str> = vips.iter().map(String::as_str).collect();
        let mut o = world(&v, &["a", "b"], &["a", "b"]);
        let roles = settle(&mut o, &["a", "b"]);
        o.settled = ["b".to_string()].into();
        let d = decide("a", &o, &roles["a"]);
        assert!(d.writes.is_empty(), "{:?}", d.writes);
        assert_eq!(d.roles, roles["a"]);
    }
}
