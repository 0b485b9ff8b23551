//! Fault injection: a kernel that refuses, or loses the answer to, any one
//! call of a sync. Whatever the call and the errno, the agent does not
//! panic, and one full sync later the kernel holds exactly the plan for
//! what the agent owns, the ledger lists exactly that, and nothing foreign
//! was touched.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::arb::*;
use common::*;
use lvs_node_agent::dataplane::errno;
use lvs_node_agent::dataplane::fake::{Call, FakeDataplane};
use lvs_node_agent::desired::{desired, service_key};
use lvs_node_agent::kernel::{self, AddrKind, Address, VipMode};
use lvs_node_agent::reconcile::{Reconciler, SyncInput, SyncScope};
use lvs_planner::NodePlan;
use proptest::prelude::*;

const EBUSY: i32 = 16;
const ENOBUFS: i32 = 105;

/// What the kernel does to the chosen call.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Refuse(i32),
    LoseAnswer,
}

fn arb_fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        prop::sample::select(vec![
            errno::EEXIST,
            errno::ENOENT,
            errno::ESRCH,
            EBUSY,
            ENOBUFS,
            errno::EINVAL,
        ])
        .prop_map(Fault::Refuse),
        Just(Fault::LoseAnswer),
    ]
}

/// An IPv6 address on eth0 and a sysctl the agent never wrote.
fn foreign_address() -> Address {
    Address {
        interface: "eth0".into(),
        addr: ip("2001:db8::5"),
        prefix_len: 64,
        label: None,
        scope: kernel::Scope::Global,
        kind: AddrKind::Interface,
    }
}
const FOREIGN_SYSCTL: &str = "net/ipv6/conf/all/forwarding";

/// How the faulty transition is synced.
#[derive(Debug, Clone, Copy)]
enum Transition {
    /// From the cached view.
    Cached,
    /// After a full read.
    Full,
    /// Scoped to every service and VIP of both plans (ledger changes go to
    /// the journal).
    Scoped,
}

fn scoped(
    r: &mut Reconciler<FakeDataplane>,
    from: &NodePlan,
    to: &NodePlan,
) -> lvs_node_agent::report::SyncReport {
    let scope = SyncScope {
        services: from
            .services
            .iter()
            .chain(&to.services)
            .map(|s| service_key(&s.key))
            .collect(),
        vips: from.vips.iter().chain(&to.vips).map(|v| v.addr).collect(),
    };
    let ips = node_ips();
    r.sync_scoped(
        SyncInput {
            plan: to,
            node_ips: &ips,
            directs: !to.services.is_empty(),
        },
        &scope,
    )
}

/// Makes the `nth` call (counting from 0) of what follows fail.
fn inject(f: &mut FakeDataplane, nth: usize, fault: Fault) {
    let seen = Arc::new(AtomicUsize::new(0));
    let pick = move |_: &Call| seen.fetch_add(1, Ordering::SeqCst) == nth;
    match fault {
        Fault::Refuse(e) => f.fail_once(pick, e),
        Fault::LoseAnswer => f.lose_answer_once(pick),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fault_injection_at_any_call_then_one_full_sync_converges(
        first in arb_plan(),
        second in arb_plan(),
        mode in prop_oneof![Just(VipMode::Address), Just(VipMode::LocalRoute)],
        nth in 0usize..48,
        fault in arb_fault(),
        transition in prop_oneof![
            Just(Transition::Cached),
            Just(Transition::Full),
            Just(Transition::Scoped),
        ],
    ) {
        let dir = temp_dir("fault");
        let mut fake = FakeDataplane::new();
        let (fk, fs) = foreign();
        fake.ipvs.insert(fk, fs);
        fake.addresses.insert(foreign_address());
        fake.sysctls.insert(FOREIGN_SYSCTL.into(), "1".into());
        let mut r = reconciler(fake, &dir).with_vip_mode(mode);
        let rep = sync(&mut r, &first, false);
        prop_assert!(rep.ok(), "{:?}", rep.errors);

        // The transition, with one call failing.
        inject(r.dataplane_mut(), nth, fault);
        let _ = match transition {
            Transition::Cached => sync(&mut r, &second, false),
            Transition::Full => sync(&mut r, &second, true),
            Transition::Scoped => scoped(&mut r, &first, &second),
        };
        r.dataplane_mut().clear_failures();

        let rep = sync(&mut r, &second, true);
        prop_assert!(rep.ok(), "after {fault:?} at call {nth}: {:?}", rep.errors);
        assert_matches(r.dataplane(), &second, mode)?;
        let f = r.dataplane();
        prop_assert!(f.addresses.contains(&foreign_address()), "{:?}", f.addresses);
        prop_assert_eq!(f.sysctls.get(FOREIGN_SYSCTL).map(String::as_str), Some("1"));

        // The ledger lists exactly what the agent owns in the kernel.
        let want = desired(&second, &node_ips(), f.addresses.iter(), mode);
        let l = r.ledger();
        prop_assert_eq!(
            l.services.keys().collect::<Vec<_>>(),
            want.services.keys().collect::<Vec<_>>()
        );
        for (k, owned) in &l.services {
            let in_kernel: Vec<_> = f.ipvs[k].dests.keys().collect();
            prop_assert_eq!(owned.dests.iter().collect::<Vec<_>>(), in_kernel);
            prop_assert_eq!(&owned.owner, &want.services[k].owner);
        }
        prop_assert_eq!(
            l.addresses.iter().collect::<Vec<_>>(),
            want.addresses.keys().collect::<Vec<_>>()
        );
        prop_assert_eq!(
            l.tunnels.keys().collect::<Vec<_>>(),
            want.tunnels.keys().collect::<Vec<_>>()
        );
        prop_assert_eq!(&l.fou_ports, &want.fou_ports);
        for (k, s) in &l.sysctls {
            prop_assert!(want.sysctls.contains_key(k), "{k} owned but not wanted");
            prop_assert_eq!(f.sysctls.get(k), Some(&s.value));
        }

        // And a restart on that kernel adopts it without a write.
        let fake = r.into_dataplane();
        let mut r = reconciler(fake, &dir).with_vip_mode(mode);
        let rep = sync(&mut r, &second, false);
        prop_assert_eq!(rep.total_ops(), 0, "{:?}", rep.ops);
    }
}
