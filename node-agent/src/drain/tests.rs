use super::*;

fn tuple(protocol: Protocol) -> ServiceKey {
    ServiceKey::Tuple {
        addr: "10.0.0.1".parse().unwrap(),
        protocol,
        port: 80,
    }
}

#[test]
fn what_a_drain_waits_for() {
    let fwmark = ServiceKey::Fwmark {
        family: lvs_ipvs::Family::V4,
        mark: 7,
    };
    // (service, active, inactive, waited for)
    let table = [
        (tuple(Protocol::TCP), 2, 9, 2),
        (tuple(Protocol::TCP), 0, 9, 0),
        (tuple(Protocol::SCTP), 0, 3, 0),
        (tuple(Protocol::UDP), 0, 3, 3),
        (tuple(Protocol::UDP), 1, 3, 4),
        (fwmark, 0, 3, 3),
    ];
    for (svc, active, inactive, want) in table {
        assert_eq!(
            waited_for(&svc, active, inactive),
            want,
            "{svc} {active}/{inactive}"
        );
    }
}

fn one_drain(deadline_in: Duration) -> (Drains, Instant) {
    let now = Instant::now();
    let dest = planned_destination(
        DestKey {
            addr: "10.1.0.2".parse().unwrap(),
            port: 8080,
        },
        &lvs_ipvs::DestConfig::new(lvs_ipvs::FwdMethod::Masq, 0),
    )
    .unwrap();
    let mut drains = Drains::default();
    drains
        .entries
        .entry(tuple(Protocol::TCP))
        .or_default()
        .insert(
            dest_key(&dest),
            Drain {
                owner: "default/web".into(),
                dest,
                started: now,
                since: rfc3339_now(),
                deadline: now + deadline_in,
                connections: None,
                ended: None,
                problem: String::new(),
            },
        );
    (drains, now)
}

#[test]
fn an_unreadable_count_waits_for_the_deadline() {
    let (mut drains, now) = one_drain(Duration::from_secs(5));
    let fail = |_: &ServiceKey| -> DpResult<Vec<DestEntry>> {
        Err(crate::dataplane::DataplaneError::Other {
            request: "read".into(),
            detail: "broken".into(),
        })
    };
    assert!(drains.poll(now, fail).is_empty());
    assert!(drains.running());
    assert_eq!(drains.next_poll(), Some(now + POLL_INTERVAL));
    let ended = drains.poll(now + Duration::from_secs(5), fail);
    assert_eq!(ended.into_iter().collect::<Vec<_>>(), ["default/web"]);
    assert!(!drains.running());
    assert_eq!(drains.next_poll(), None);
}

#[test]
fn a_destination_gone_from_the_kernel_ends_its_drain() {
    let (mut drains, now) = one_drain(Duration::from_secs(5));
    let ended = drains.poll(now, |_| Ok(Vec::new()));
    assert_eq!(ended.len(), 1);
    let d = drains
        .get(
            &tuple(Protocol::TCP),
            &DestKey {
                addr: "10.1.0.2".parse().unwrap(),
                port: 8080,
            },
        )
        .unwrap();
    assert_eq!(d.ended, Some(End::Gone));
}

#[test]
fn drain_transitions_are_logged_one_by_one_only_up_to_a_budget() {
    let mut log = LogBudget::default();
    let allowed = (0..LOGGED_TRANSITIONS + 5).filter(|_| log.allow()).count();
    assert_eq!(allowed, LOGGED_TRANSITIONS);
    assert_eq!(log.used, LOGGED_TRANSITIONS + 5);
}
