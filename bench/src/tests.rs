use super::*;

#[test]
fn table_entries_are_distinct_and_counted() {
    for (n, m) in [(1000, 1), (50, 10), (100, 100), (16, 4)] {
        let t = Table::new(n, m, 1000).unwrap();
        let ops = t.ops();
        let svcs = ops
            .iter()
            .filter(|o| matches!(o, Op::AddService(_)))
            .count();
        assert_eq!(svcs, n as usize);
        assert_eq!(ops.len(), (n * (m + 1)) as usize);
        let pairs: std::collections::BTreeSet<_> = ops
            .iter()
            .filter_map(|o| match o {
                Op::AddDest { service, dest } => Some((*service, dest.key)),
                _ => None,
            })
            .collect();
        assert_eq!(pairs.len(), (n * m) as usize, "n={n} m={m}");
    }
}

#[test]
fn services_share_pool_groups() {
    let t = Table::new(250, 10, 1000).unwrap();
    assert_eq!(t.member(0, 0), t.member(100, 0));
    assert_ne!(t.member(0, 0), t.member(1, 0));
    assert_eq!(t.member(99, 9), 999);
}

#[test]
fn rules_look_like_ipvsadm_save() {
    let t = Table::new(2, 2, 1000).unwrap();
    assert_eq!(
        t.rules(),
        "-A -t 172.16.0.1:80 -s rr\n\
         -a -t 172.16.0.1:80 -r 10.1.0.1:8080 -m -w 1\n\
         -a -t 172.16.0.1:80 -r 10.1.0.2:8080 -m -w 1\n\
         -A -t 172.16.0.2:80 -s rr\n\
         -a -t 172.16.0.2:80 -r 10.1.0.3:8080 -m -w 1\n\
         -a -t 172.16.0.2:80 -r 10.1.0.4:8080 -m -w 1\n"
    );
}

#[test]
fn rules_round_trip_through_lines() {
    let t = Table::new(30, 3, 1000).unwrap();
    let mut rendered = String::new();
    for op in parse_rules(&t.rules()).unwrap() {
        match op {
            Op::AddService(s) => rendered += &service_line(&s),
            Op::AddDest { service, dest } => rendered += &dest_line(&service, &dest),
            other => panic!("unexpected {other}"),
        }
        rendered.push('\n');
    }
    assert_eq!(rendered, t.rules());
}

#[test]
fn parse_rules_rejects_garbage_with_line_number() {
    let err = parse_rules("-A -t 1.2.3.4:80 -s rr\n-a -t 1.2.3.4:80 -r nope -m\n").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(parse_rules("-A -t 1.2.3.4:80 --bogus\n").is_err());
}

#[test]
fn line_diff_is_order_free_and_counts_repeats() {
    assert!(line_diff("a\nb\nc\n", "c\na\nb\n").is_empty());
    let d = line_diff("a\nb\nb\n", "b\nc\n");
    assert_eq!(d.missing, vec!["a", "b"]);
    assert_eq!(d.unexpected, vec!["c"]);
}

#[test]
fn table_limits() {
    assert!(Table::new(0, 1, 1000).is_err());
    assert!(Table::new(10, 1001, 1000).is_err());
    assert!(Table::new(10, 1, MAX_POOL + 1).is_err());
    // The largest pool stays below the harness's extra destinations.
    let t = Table::new(10, 10, MAX_POOL).unwrap();
    let last = Table::rs_addr(t.pool - 1);
    assert!(last < "10.9.0.0".parse::<Ipv4Addr>().unwrap(), "{last}");
    assert!(Table::rs_addr(0) >= "10.1.0.1".parse::<Ipv4Addr>().unwrap());
}

#[test]
fn manifests_parse_and_select_the_same_destinations() {
    use lvs_api::manifest::{Manifest, parse};
    let t = Table::new(30, 10, 100).unwrap();
    let files = t.manifests("bench", Ipv4Addr::new(10, 0, 0, 2));
    let mut vs = Vec::new();
    let mut rs = Vec::new();
    let mut nodes = 0;
    for (_, text) in &files {
        for m in parse(text).unwrap() {
            match m {
                Manifest::VirtualService(o) => vs.push(o),
                Manifest::RealServer(o) => rs.push(o),
                Manifest::Node(_) => nodes += 1,
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
    assert_eq!((vs.len(), rs.len(), nodes), (30, 100, 1));
    // Service i selects exactly the pool members the rules give it.
    for (i, v) in vs.iter().enumerate() {
        let sel = &v.spec.selector().match_labels;
        let mut picked: Vec<String> = rs
            .iter()
            .filter(|r| sel.iter().all(|(k, val)| r.meta.labels.get(k) == Some(val)))
            .map(|r| r.spec.address.clone().unwrap())
            .collect();
        picked.sort();
        let mut want: Vec<String> = (0..10)
            .map(|j| Table::rs_addr(t.member(i as u32, j)).to_string())
            .collect();
        want.sort();
        assert_eq!(picked, want, "service {i}");
        assert_eq!(
            v.spec.address.as_deref(),
            Some(t.vip(i as u32).to_string().as_str())
        );
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../ipvs/tests/fixtures/pcap/{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn counts_ipvsadm_add_dest_capture() {
    // ipvsadm -a: three sockets, each resolving the family; then GET_INFO
    // and NEW_DEST on the IPVS family (id 32 in that capture).
    let c = count_netlink(&fixture("04-dest-nat-new"), 32).unwrap();
    assert_eq!(
        c,
        NetlinkCount {
            ipvs_requests: 2,
            ipvs_dumps: 0,
            ctrl_requests: 3,
            other_requests: 0,
            ipvs_datagrams: 2,
            marked_requests: 0,
        }
    );
}

#[test]
fn counts_dumps_in_ipvsadm_save_capture() {
    let c = count_netlink(&fixture("14-save"), 32).unwrap();
    // GET_INFO, GET_SERVICE dump, and one GET_DEST dump per service (3).
    assert_eq!(c.ipvs_requests, 5);
    assert_eq!(c.ipvs_dumps, 4);
    // With the wrong family id nothing counts as IPVS.
    assert_eq!(
        count_netlink(&fixture("14-save"), 33)
            .unwrap()
            .ipvs_requests,
        0
    );
}

#[test]
fn marked_requests_are_counted_apart() {
    let mut p = fixture("04-dest-nat-new");
    // Stamp the mark into the NEW_DEST request (the last-but-one record):
    // walk the records and patch the request whose genl cmd is 5.
    let mut off = 24;
    let mut patched = 0;
    while off + 16 <= p.len() {
        let incl = u32::from_le_bytes(p[off + 8..off + 12].try_into().unwrap()) as usize;
        let msg = off + 16 + 16;
        let flags = u16::from_le_bytes([p[msg + 6], p[msg + 7]]);
        if flags & NLM_F_REQUEST != 0 && p[msg + 16] == 5 {
            p[msg + 12..msg + 16].copy_from_slice(&BENCH_PORT_MARK.to_le_bytes());
            patched += 1;
        }
        off += 16 + incl;
    }
    assert_eq!(patched, 1);
    let c = count_netlink(&p, 32).unwrap();
    assert_eq!(
        (c.ipvs_requests, c.marked_requests, c.ctrl_requests),
        (1, 1, 3)
    );
}

#[test]
fn rejects_non_pcap() {
    assert!(count_netlink(b"definitely not a capture file", 32).is_err());
}

#[test]
fn percentile_ranks() {
    let s: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentiles(&s), Some((50.0, 99.0)));
    assert_eq!(percentiles(&[3.0]), Some((3.0, 3.0)));
    assert_eq!(percentiles(&[]), None);
}
