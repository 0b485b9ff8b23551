use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, addrs: &[&str]) -> Pool {
    Pool::from_spec(
        name,
        &LvsAddressPoolSpec {
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn sel(k: &str, v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: [(k.to_string(), v.to_string())].into_iter().collect(),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn entries_parse_into_cidrs() {
    let cases: &[(&str, &[&str])] = &[
        ("192.0.2.0/24", &["192.0.2.0/24"]),
        ("192.0.2.7", &["192.0.2.7/32"]),
        ("2001:db8::1", &["2001:db8::1/128"]),
        ("2001:db8:1::/112", &["2001:db8:1::/112"]),
        (
            "192.0.2.10-192.0.2.20",
            &[
                "192.0.2.10/31",
                "192.0.2.12/30",
                "192.0.2.16/30",
                "192.0.2.20/32",
            ],
        ),
        ("192.0.2.0-192.0.2.255", &["192.0.2.0/24"]),
        ("10.0.0.5-10.0.0.5", &["10.0.0.5/32"]),
        ("0.0.0.0-255.255.255.255", &["0.0.0.0/0"]),
        ("2001:db8::-2001:db8::3", &["2001:db8::/126"]),
        (
            "2001:db8::ff-2001:db8::100",
            &["2001:db8::ff/128", "2001:db8::100/128"],
        ),
        ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &["::/0"]),
    ];
    for (entry, want) in cases {
        let got: Vec<String> = parse_entry(entry)
            .unwrap_or_else(|e| panic!("{entry}: {e}"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, *want, "{entry}");
    }
}

#[test]
fn bad_entries_name_the_entry_and_the_forms() {
    let cases = [
        ("192.0.2.1/24", "host bits set (did you mean 192.0.2.0/24?)"),
        ("192.0.2.0/33", "prefix length too long"),
        ("192.0.2.9-192.0.2.1", "range start after its end"),
        ("192.0.2.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("pool-a", "not an IP address"),
        ("192.0.2.0/x", "bad prefix length"),
    ];
    for (entry, why) in cases {
        let e = parse_entry(entry).unwrap_err();
        assert!(e.contains(why), "{entry}: {e}");
        assert!(e.contains(&format!("{entry:?}")), "{e}");
        assert!(e.contains("expected a CIDR"), "{e}");
    }
    let e = parse_addresses(&["192.0.2.0/24".into(), "nope".into()]).unwrap_err();
    assert!(e.starts_with("spec.addresses[1]: \"nope\""), "{e}");
}

#[test]
fn builtin_deny_list() {
    for a in [
        "127.0.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "239.1.2.3",
        "255.255.255.255",
        "0.0.0.0",
        "::1",
        "::",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(builtin_denied(ip(a)).is_some(), "{a}");
    }
    for a in ["192.0.2.1", "10.0.0.1", "2001:db8::1"] {
        assert_eq!(builtin_denied(ip(a)), None, "{a}");
    }
}

#[test]
fn deny_list_wins_over_pools() {
    let mut p = AddressPolicy::new(vec![pool("all", &["0.0.0.0/0", "::/0"])]);
    p.deny(ip("10.0.0.2"), "the address of node n1");
    for (a, why) in [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.5", "multicast"),
        ("10.0.0.2", "node n1"),
    ] {
        let e = p.vip_allowed("ns", None, ip(a)).unwrap_err();
        assert_eq!(e.reason(), "AddressDenied");
        assert!(e.to_string().contains(why), "{e}");
    }
    assert_eq!(
        p.vip_allowed("ns", None, ip("10.0.0.3")).unwrap().name,
        "all"
    );
}

#[test]
fn vip_must_lie_in_a_pool_admitting_the_namespace() {
    let mut a = pool("team-a", &["192.0.2.0/28"]);
    a.namespace_selector = Some(sel("team", "a"));
    let b = pool("open", &["198.51.100.0/28"]);
    let p = AddressPolicy::new(vec![a, b]);
    let team_a = labels(&[("team", "a")]);
    assert_eq!(
        p.vip_allowed("x", Some(&team_a), ip("192.0.2.1"))
            .unwrap()
            .name,
        "team-a"
    );
    let e = p
        .vip_allowed("y", Some(&BTreeMap::new()), ip("192.0.2.1"))
        .unwrap_err();
    assert_eq!(e.reason(), "NamespaceNotAdmitted");
    assert!(e.to_string().contains("LvsAddressPool team-a"), "{e}");
    assert!(e.to_string().contains("namespace y"), "{e}");
    let e = p.vip_allowed("y", None, ip("203.0.113.1")).unwrap_err();
    assert_eq!(e.reason(), "OutsidePools");
    assert!(e.to_string().contains("pools: open, team-a"), "{e}");
    let e = AddressPolicy::default()
        .vip_allowed("y", None, ip("203.0.113.1"))
        .unwrap_err();
    assert!(e.to_string().contains("no pools exist"), "{e}");
}

#[test]
fn unknown_labels_judge_by_the_name_label() {
    let mut a = pool("by-name", &["192.0.2.0/28"]);
    a.namespace_selector = Some(sel(NAMESPACE_NAME_LABEL, "tenant-a"));
    let p = AddressPolicy::new(vec![a]);
    assert!(p.vip_allowed("tenant-a", None, ip("192.0.2.1")).is_ok());
    assert!(
        p.vip_allowed("tenant-a", Some(&BTreeMap::new()), ip("192.0.2.1"))
            .is_ok()
    );
    assert!(p.vip_allowed("tenant-b", None, ip("192.0.2.1")).is_err());
}

#[test]
fn owners_bind_non_shared_pools_only() {
    let mut shared = pool("shared", &["198.51.100.0/28"]);
    shared.shared = true;
    let mut p = AddressPolicy::new(vec![pool("own", &["192.0.2.0/28"]), shared]);
    p.set_owner(ip("192.0.2.1"), "a");
    p.set_owner(ip("198.51.100.1"), "a");
    assert!(p.vip_allowed("a", None, ip("192.0.2.1")).is_ok());
    let e = p.vip_allowed("b", None, ip("192.0.2.1")).unwrap_err();
    assert_eq!(e.reason(), "AddressHeld");
    assert!(e.to_string().contains("held by namespace a"), "{e}");
    assert!(e.to_string().contains("LvsAddressPool own"), "{e}");
    assert!(p.vip_allowed("b", None, ip("198.51.100.1")).is_ok());
}

#[test]
fn index_round_trips_denied_and_owners() {
    let mut p = AddressPolicy::new(vec![pool("own", &["192.0.2.0/28"])]);
    p.deny(ip("192.0.2.5"), "a node address");
    let owners = vec![AddressOwner {
        address: "192.0.2.1".into(),
        namespace: "a".into(),
        released: None,
    }];
    let idx = p.index(&owners);
    assert_eq!(idx.denied_addresses, vec!["192.0.2.5"]);
    assert_eq!(idx.pools[0].cidrs, vec!["192.0.2.0/28"]);
    let agent = AddressPolicy::new(vec![pool("own", &["192.0.2.0/28"])]).with_index(&idx);
    assert!(agent.vip_allowed("b", None, ip("192.0.2.1")).is_err());
    assert!(agent.vip_allowed("b", None, ip("192.0.2.5")).is_err());
    assert!(agent.vip_allowed("b", None, ip("192.0.2.6")).is_ok());
}

#[test]
fn allocation_takes_the_first_free_address() {
    let mut no_auto = pool("a-manual", &["203.0.113.0/24"]);
    no_auto.auto_assign = false;
    let mut p = AddressPolicy::new(vec![
        no_auto,
        pool("b-auto", &["192.0.2.0/30", "192.0.2.8"]),
    ]);
    p.deny(ip("192.0.2.1"), "a node address");
    p.set_owner(ip("192.0.2.2"), "other");
    let none = BTreeSet::new();
    // .0 and .3 are network/broadcast of the /30, .1 denied, .2 held.
    assert_eq!(
        p.allocate("ns", None, &none, None).unwrap(),
        ip("192.0.2.8")
    );
    let used = BTreeSet::from([ip("192.0.2.8")]);
    let e = p.allocate("ns", None, &used, None).unwrap_err();
    assert_eq!(e.reason(), "PoolsExhausted");
    assert!(e.to_string().contains("(pools: b-auto)"), "{e}");
    // A requested address may come from a pool without autoAssign.
    assert_eq!(
        p.allocate("ns", None, &used, Some(ip("203.0.113.9")))
            .unwrap(),
        ip("203.0.113.9")
    );
    assert_eq!(
        p.allocate("ns", None, &none, Some(ip("192.0.2.2")))
            .unwrap_err()
            .reason(),
        "AddressHeld"
    );
    // The owner itself may be given its address again.
    assert_eq!(
        p.allocate("other", None, &BTreeSet::from([ip("192.0.2.8")]), None)
            .unwrap(),
        ip("192.0.2.2")
    );
}

#[test]
fn allocation_in_ipv6_and_single_addresses() {
    let p = AddressPolicy::new(vec![pool("v6", &["2001:db8::/127"])]);
    let used = BTreeSet::from([ip("2001:db8::")]);
    assert_eq!(
        p.allocate("ns", None, &used, None).unwrap(),
        ip("2001:db8::1")
    );
}

#[test]
fn overlapping_pools_are_reported() {
    let p = AddressPolicy::new(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["192.0.2.128-192.0.2.130"]),
        pool("c", &["198.51.100.0/24"]),
    ]);
    assert_eq!(p.overlaps(), vec![("a".to_string(), "b".to_string())]);
}

#[test]
fn node_selectors() {
    let mut p = pool("p", &["192.0.2.0/24"]);
    let rs = labels(&[("role", "rs")]);
    assert!(p.director_allowed(&rs));
    assert!(
        !p.real_server_node_allowed(&rs),
        "unset: no node may be a realserver"
    );
    p.real_server_node_selector = Some(LabelSelector::default());
    assert!(p.real_server_node_allowed(&rs), "empty: every node");
    p.director_selector = Some(sel("role", "director"));
    assert!(!p.director_allowed(&rs));
}

fn claim(ns: &str, a: &str, t: &str) -> Claim {
    Claim {
        namespace: ns.into(),
        address: ip(a),
        created: Some(t.into()),
    }
}

fn owner(a: &str, ns: &str, released: Option<&str>) -> AddressOwner {
    AddressOwner {
        address: a.into(),
        namespace: ns.into(),
        released: released.map(Into::into),
    }
}

#[test]
fn oldest_claim_owns_and_later_claims_never_inherit() {
    let mut shared = pool("shared", &["198.51.100.0/28"]);
    shared.shared = true;
    let p = AddressPolicy::new(vec![pool("own", &["192.0.2.0/28"]), shared]);
    let no_labels = |_: &str| None;
    let a = claim("a", "192.0.2.1", "2026-01-01T00:00:01Z");
    let b = claim("b", "192.0.2.1", "2026-01-01T00:00:02Z");
    let s = claim("a", "198.51.100.1", "2026-01-01T00:00:01Z");
    let outside = claim("a", "203.0.113.1", "2026-01-01T00:00:01Z");

    // Fresh: the oldest holds; shared and refused claims have no owner.
    let o1 = decide_owners(
        &p,
        &[b.clone(), a.clone(), s, outside],
        &no_labels,
        &[],
        "T1",
    );
    assert_eq!(o1, vec![owner("192.0.2.1", "a", None)]);
    // Previous owner kept even if a claim looks older.
    let older_b = claim("b", "192.0.2.1", "2025-01-01T00:00:00Z");
    let o = decide_owners(&p, &[older_b, a.clone()], &no_labels, &o1, "T1");
    assert_eq!(o, o1);

    // a goes away: b existed while a held it, so the address stays a's.
    let now = "2026-01-01T00:01:00Z";
    let o2 = decide_owners(&p, std::slice::from_ref(&b), &no_labels, &o1, now);
    assert_eq!(o2, vec![owner("192.0.2.1", "a", Some(now))]);
    // Later syncs keep the first release time.
    let o3 = decide_owners(
        &p,
        std::slice::from_ref(&b),
        &no_labels,
        &o2,
        "2026-01-01T00:09:00Z",
    );
    assert_eq!(o3, o2);
    // b recreated (created after the release): it takes the address.
    let b2 = claim("b", "192.0.2.1", "2026-01-01T00:02:00Z");
    let o4 = decide_owners(
        &p,
        std::slice::from_ref(&b2),
        &no_labels,
        &o3,
        "2026-01-01T00:02:01Z",
    );
    assert_eq!(o4, vec![owner("192.0.2.1", "b", None)]);
    // a comes back while reserved: it holds it again.
    let a2 = claim("a", "192.0.2.1", "2026-01-01T00:03:00Z");
    let o5 = decide_owners(&p, &[b, a2], &no_labels, &o2, "2026-01-01T00:03:01Z");
    assert_eq!(o5, vec![owner("192.0.2.1", "a", None)]);
    // Nobody left: the entry goes.
    assert!(decide_owners(&p, &[], &no_labels, &o2, "T").is_empty());
}

#[test]
fn owners_ignore_namespaces_the_pool_does_not_admit() {
    let mut own = pool("own", &["192.0.2.0/28"]);
    own.namespace_selector = Some(sel("team", "b"));
    let p = AddressPolicy::new(vec![own]);
    let lab = |ns: &str| (ns == "b").then(|| labels(&[("team", "b")]));
    let a = claim("a", "192.0.2.1", "2026-01-01T00:00:01Z");
    let b = claim("b", "192.0.2.1", "2026-01-01T00:00:02Z");
    let o = decide_owners(&p, &[a, b], &lab, &[], "T");
    assert_eq!(o, vec![owner("192.0.2.1", "b", None)]);
}

#[test]
fn every_match_address_of_a_fwmark_service_is_checked() {
    let mut a = pool("team-a", &["192.0.2.0/28"]);
    a.namespace_selector = Some(sel("team", "a"));
    let open = pool("open", &["198.51.100.0/28"]);
    let p = AddressPolicy::new(vec![a, open]);
    let vs = |ns: &str, addrs: &[&str]| {
        let yaml = format!(
            "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: mark, namespace: {ns}}}\nspec:\n  fwmark: 7\n  fwmarkMatch: {{addresses: [{}], protocol: TCP}}\n  directors: {{nodeSelector: {{matchLabels: {{d: \"1\"}}}}}}\n  realServerSelector: {{matchLabels: {{app: x}}}}\n",
            addrs.join(", ")
        );
        match lvs_api::manifest::parse(&yaml).unwrap().remove(0) {
            lvs_api::manifest::Manifest::VirtualService(v) => v,
            other => panic!("not a VirtualService: {other:?}"),
        }
    };
    // The name label stands for the namespace's labels here: "team-a"
    // matches no `team: a` selector, so only the open pool admits it.
    assert_eq!(
        p.check(&vs("y", &["198.51.100.1", "198.51.100.2"]))
            .unwrap()
            .map(|p| p.name.as_str()),
        Some("open")
    );
    let e = p
        .check(&vs("y", &["198.51.100.1", "192.0.2.1"]))
        .unwrap_err();
    assert_eq!(e.reason(), "NamespaceNotAdmitted");
    assert_eq!(
        e.message("spec.fwmarkMatch.addresses"),
        "spec.fwmarkMatch.addresses: 192.0.2.1 lies in LvsAddressPool team-a, which does not admit namespace y"
    );
    // Without a match a fwmark service has no VIP and needs no pool.
    let mut bare = vs("y", &["198.51.100.1"]);
    bare.spec.fwmark_match = None;
    assert!(p.check(&bare).unwrap().is_none());
}
