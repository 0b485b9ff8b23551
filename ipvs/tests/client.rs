//! Request-level tests: the client talks to a scripted fake kernel through
//! `ScriptedTransport`, which records the exact datagrams sent.
//!
//! Longer than most files: one test per request kind and error path, each a
//! short script, reads best next to the others.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};

use lvs_ipvs::codec::{IpvsAttr, IpvsCmd, IpvsMessage, Nested, parse_message};
use lvs_ipvs::error::errno;
use lvs_ipvs::replies;
use lvs_ipvs::types::{DestKey, Destination};
use lvs_ipvs::{
    DestConfig, Error, Family, FwdMethod, IpvsClient, Op, Protocol, ScriptedTransport, SentLog,
    Service, ServiceConfig, ServiceKey, Transport,
};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART, NLM_F_REQUEST};

const FAMILY: u16 = 0x23;

fn svc_key(i: u32) -> ServiceKey {
    ServiceKey::Tuple {
        addr: format!("10.1.{}.{}", i / 250, i % 250 + 1).parse().unwrap(),
        protocol: Protocol::TCP,
        port: 80,
    }
}

fn service(i: u32) -> Service {
    Service {
        key: svc_key(i),
        config: ServiceConfig::new(Family::V4, "rr"),
    }
}

fn dest(i: u32, port: u16) -> Destination {
    Destination {
        key: DestKey {
            addr: format!("10.2.0.{}", i % 250 + 1).parse().unwrap(),
            port,
        },
        config: DestConfig::new(FwdMethod::Masq, 1),
    }
}

/// A small in-memory IPVS: enough semantics (EEXIST/ESRCH/ENOENT, dumps
/// split over several datagrams) to exercise the client's bookkeeping.
#[derive(Default)]
struct FakeKernel {
    services: BTreeMap<ServiceKey, (Service, BTreeMap<DestKey, Destination>)>,
    /// Dump entries per datagram.
    per_datagram: usize,
    /// Answer a batch's acks in reverse order (the client must map by seq).
    reverse_acks: bool,
}

impl FakeKernel {
    fn handle(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut acks = Vec::new();
        for (header, msg) in replies::requests(datagram) {
            let seq = header.sequence_number;
            let svc = msg.nlas.iter().find_map(|a| match a {
                IpvsAttr::Service(n) => Some(n.attrs.clone()),
                _ => None,
            });
            let dst = msg.nlas.iter().find_map(|a| match a {
                IpvsAttr::Dest(n) => Some(n.attrs.clone()),
                _ => None,
            });
            let key = svc.as_ref().map(|a| ServiceKey::from_attrs(a).unwrap());
            let errno = match msg.cmd {
                IpvsCmd::NewService => {
                    let (s, _) = Service::from_attrs(&svc.unwrap()).unwrap();
                    match self.services.entry(s.key) {
                        Entry::Occupied(_) => errno::EEXIST,
                        Entry::Vacant(v) => {
                            v.insert((s, BTreeMap::new()));
                            0
                        }
                    }
                }
                IpvsCmd::DelService => match self.services.remove(&key.unwrap()) {
                    Some(_) => 0,
                    None => errno::ESRCH,
                },
                IpvsCmd::NewDest | IpvsCmd::DelDest => {
                    let key = key.unwrap();
                    match self.services.get_mut(&key) {
                        None => errno::ESRCH,
                        Some((_, dests)) => {
                            let attrs = dst.unwrap();
                            if msg.cmd == IpvsCmd::NewDest {
                                let (d, _) = Destination::from_attrs(&attrs, key.family()).unwrap();
                                match dests.entry(d.key) {
                                    Entry::Occupied(_) => errno::EEXIST,
                                    Entry::Vacant(v) => {
                                        v.insert(d);
                                        0
                                    }
                                }
                            } else {
                                let mut with_cfg = attrs.clone();
                                with_cfg.extend(dest(0, 0).to_attrs().into_iter().skip(3));
                                let (d, _) =
                                    Destination::from_attrs(&with_cfg, key.family()).unwrap();
                                if dests.remove(&d.key).is_some() {
                                    0
                                } else {
                                    errno::ENOENT
                                }
                            }
                        }
                    }
                }
                IpvsCmd::GetService if header.flags & NLM_F_DUMP != 0 => {
                    let entries: Vec<_> = self
                        .services
                        .values()
                        .map(|(s, _)| {
                            IpvsMessage::new(
                                IpvsCmd::NewService,
                                vec![IpvsAttr::Service(Nested::new(s.to_attrs()))],
                            )
                        })
                        .collect();
                    out.extend(self.dump_reply(seq, entries));
                    continue;
                }
                IpvsCmd::GetDest if header.flags & NLM_F_DUMP != 0 => {
                    // Like the kernel: no service attribute → no entries.
                    let entries = key
                        .and_then(|k| self.services.get(&k))
                        .map(|(_, dests)| {
                            dests
                                .values()
                                .map(|d| {
                                    IpvsMessage::new(
                                        IpvsCmd::NewDest,
                                        vec![IpvsAttr::Dest(Nested::new(d.to_attrs()))],
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.extend(self.dump_reply(seq, entries));
                    continue;
                }
                IpvsCmd::GetService => match key.and_then(|k| self.services.get(&k)) {
                    Some((s, _)) => {
                        out.push(replies::ipvs(
                            FAMILY,
                            seq,
                            0,
                            IpvsMessage::new(
                                IpvsCmd::NewService,
                                vec![IpvsAttr::Service(Nested::new(s.to_attrs()))],
                            ),
                        ));
                        0
                    }
                    None => errno::ESRCH,
                },
                IpvsCmd::GetInfo => {
                    out.push(replies::ipvs(
                        FAMILY,
                        seq,
                        0,
                        IpvsMessage::new(
                            IpvsCmd::SetInfo,
                            vec![
                                IpvsAttr::InfoVersion(0x010201),
                                IpvsAttr::InfoConnTabSize(4096),
                            ],
                        ),
                    ));
                    0
                }
                other => panic!("fake kernel does not handle {other:?}"),
            };
            acks.push(replies::error(seq, errno));
        }
        if self.reverse_acks {
            acks.reverse();
        }
        out.extend(acks);
        out
    }

    fn dump_reply(&self, seq: u32, entries: Vec<IpvsMessage>) -> Vec<Vec<u8>> {
        let mut datagrams: Vec<Vec<u8>> = entries
            .chunks(self.per_datagram.max(1))
            .map(|chunk| {
                chunk
                    .iter()
                    .flat_map(|m| replies::ipvs(FAMILY, seq, NLM_F_MULTIPART, m.clone()))
                    .collect()
            })
            .collect();
        datagrams.push(replies::done(seq));
        datagrams
    }
}

fn fake_client(
    kernel: FakeKernel,
) -> (
    IpvsClient<ScriptedTransport>,
    SentLog,
    Arc<Mutex<FakeKernel>>,
) {
    let kernel = Arc::new(Mutex::new(kernel));
    let k = Arc::clone(&kernel);
    let (transport, log) = ScriptedTransport::new(move |d| k.lock().unwrap().handle(d));
    (IpvsClient::with_family_id(transport, FAMILY), log, kernel)
}

#[test]
fn resolves_family_id_through_nlctrl() {
    let (transport, log) = ScriptedTransport::new(|d| {
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        vec![replies::family(seq, 0x2a), replies::ack(seq)]
    });
    let client = IpvsClient::new(transport).unwrap();
    assert_eq!(client.family_id(), 0x2a);
    let sent = log.datagrams();
    assert_eq!(sent.len(), 1);
    let d = &sent[0];
    assert_eq!(u16::from_ne_bytes([d[4], d[5]]), 16, "nlctrl family id");
    assert_eq!(d[16], 3, "CTRL_CMD_GETFAMILY");
    assert!(
        d.windows(5).any(|w| w == b"IPVS\0"),
        "asks for the IPVS family by name"
    );
    assert_eq!(client.counters().snapshot().requests, 1);
}

#[test]
fn missing_family_is_a_clear_error() {
    let (transport, _) = ScriptedTransport::new(|d| {
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        vec![replies::error(seq, errno::ENOENT)]
    });
    let err = IpvsClient::new(transport).unwrap_err();
    assert!(matches!(err, Error::FamilyNotFound { errno: 2 }), "{err:?}");
    assert!(err.to_string().contains("ip_vs"), "{err}");
}

#[test]
fn batching_sends_ceil_n_over_batch_datagrams_with_distinct_seqs() {
    let n = 300u32;
    let ops: Vec<Op> = (0..n).map(|i| Op::AddService(service(i))).collect();
    for batch in [1usize, 16, 64, 256] {
        let (mut client, log, kernel) = fake_client(FakeKernel::default());
        client.set_batch_size(batch);
        let before = client.counters().snapshot();
        let results = client.apply(&ops).unwrap();
        let delta = client.counters().snapshot() - before;
        assert_eq!(results.len(), ops.len());
        assert!(
            results.iter().all(|r| r.is_ok()),
            "batch {batch}: {results:?}"
        );
        let expected_sends = (n as usize).div_ceil(batch);
        assert_eq!(log.len(), expected_sends, "batch {batch}");
        assert_eq!(delta.sendmsgs, expected_sends as u64);
        assert_eq!(delta.requests, u64::from(n));
        let mut seqs = HashSet::new();
        let mut decoded = Vec::new();
        for d in log.datagrams() {
            let msgs = replies::requests(&d);
            assert!(msgs.len() <= batch);
            for (h, m) in msgs {
                assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_ACK);
                assert_eq!(h.message_type, FAMILY);
                assert!(
                    seqs.insert(h.sequence_number),
                    "duplicate seq {}",
                    h.sequence_number
                );
                decoded.push(m);
            }
        }
        let sent: Vec<IpvsMessage> = ops.iter().map(Op::to_message).collect();
        assert_eq!(decoded, sent, "datagrams carry the ops in order");
        assert_eq!(kernel.lock().unwrap().services.len(), n as usize);
    }
}

#[test]
fn kernel_errors_map_to_the_op_that_caused_them() {
    let mut kernel = FakeKernel {
        reverse_acks: true,
        ..FakeKernel::default()
    };
    kernel
        .services
        .insert(svc_key(1), (service(1), BTreeMap::new()));
    let (mut client, _, _) = fake_client(kernel);
    client.set_batch_size(4);
    let ops = vec![
        Op::AddService(service(0)), // ok
        Op::AddService(service(1)), // EEXIST
        Op::AddDest {
            service: svc_key(0),
            dest: dest(1, 80),
        }, // ok
        Op::AddDest {
            service: svc_key(7),
            dest: dest(1, 80),
        }, // ESRCH
        Op::AddDest {
            service: svc_key(0),
            dest: dest(1, 80),
        }, // EEXIST (2nd batch)
        Op::DelDest {
            service: svc_key(0),
            dest: dest(2, 80).key,
        }, // ENOENT
        Op::DelService(svc_key(1)), // ok
    ];
    let results = client.apply(&ops).unwrap();
    let summary: Vec<Option<(usize, i32)>> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| (e.index, e.errno)))
        .collect();
    assert_eq!(
        summary,
        vec![
            None,
            Some((1, errno::EEXIST)),
            None,
            Some((3, errno::ESRCH)),
            Some((4, errno::EEXIST)),
            Some((5, errno::ENOENT)),
            None
        ]
    );
    let e = results[3].as_ref().unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.op, "NEW_DEST TCP 10.1.0.8:80 -> 10.2.0.2:80");
    assert!(e.to_string().contains("errno 3"), "{e}");
    assert!(results[1].as_ref().unwrap_err().is_exists());
}

#[test]
fn extended_ack_message_is_reported() {
    let (transport, _) = ScriptedTransport::new(|d| {
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        let mut nack = replies::error(seq, errno::EINVAL);
        // Append NLMSGERR_ATTR_MSG and set NLM_F_ACK_TLVS, as the kernel does.
        let msg = b"bad scheduler\0";
        let len = (4 + msg.len()) as u16;
        nack.extend_from_slice(&len.to_ne_bytes());
        nack.extend_from_slice(&1u16.to_ne_bytes());
        nack.extend_from_slice(msg);
        while !nack.len().is_multiple_of(4) {
            nack.push(0);
        }
        let total = nack.len() as u32;
        nack[..4].copy_from_slice(&total.to_ne_bytes());
        nack[7] |= 0x02; // high byte of flags: NLM_F_ACK_TLVS = 0x200
        vec![nack]
    });
    let mut client = IpvsClient::with_family_id(transport, FAMILY);
    let results = client.apply(&[Op::AddService(service(0))]).unwrap();
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(e.errno, errno::EINVAL);
    assert_eq!(e.ext_ack.as_deref(), Some("bad scheduler"));
}

#[test]
fn dump_reads_until_done_across_datagrams() {
    let mut kernel = FakeKernel {
        per_datagram: 2,
        ..FakeKernel::default()
    };
    for i in [5, 3, 9, 1, 7] {
        let mut dests = BTreeMap::new();
        for j in 0..i {
            let d = dest(j, 8000 + j as u16);
            dests.insert(d.key, d);
        }
        kernel.services.insert(svc_key(i), (service(i), dests));
    }
    let (mut client, log, _) = fake_client(kernel);
    let before = client.counters().snapshot();
    let table = client.dump_all().unwrap();
    let delta = client.counters().snapshot() - before;
    let keys: Vec<ServiceKey> = table.iter().map(|e| e.service.key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 5);
    for e in &table {
        let n = match e.service.key {
            ServiceKey::Tuple { addr, .. } => {
                addr.to_string()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
                    - 1
            }
            _ => unreachable!(),
        };
        assert_eq!(e.destinations.len(), n as usize, "{}", e.service.key);
        assert_eq!(e.service, service(n));
    }
    // 1 service dump + 5 dest dumps; the service dump came in 3 + 1 datagrams.
    assert_eq!(delta.requests, 6);
    assert_eq!(delta.sendmsgs, 6);
    assert!(delta.recvmsgs >= 4 + 5);
    let first = replies::requests(&log.datagrams()[0]);
    assert_eq!(first[0].0.flags, NLM_F_REQUEST | NLM_F_DUMP);
    assert_eq!(first[0].1, IpvsMessage::new(IpvsCmd::GetService, vec![]));
}

#[test]
fn get_dest_without_service_returns_nothing_and_empty_service_has_no_dests() {
    let mut kernel = FakeKernel::default();
    kernel
        .services
        .insert(svc_key(0), (service(0), BTreeMap::new()));
    let (mut client, log, kernel) = fake_client(kernel);
    assert_eq!(client.destinations(&svc_key(0)).unwrap(), vec![]);
    // The client always names the service in GET_DEST.
    let (_, req) = &replies::requests(&log.datagrams()[0])[0];
    assert_eq!(req.cmd, IpvsCmd::GetDest);
    assert_eq!(
        req.nlas,
        vec![IpvsAttr::Service(Nested::new(svc_key(0).to_attrs()))]
    );
    // And the kernel-side behaviour the fake mirrors: no key → no entries.
    let bare = {
        let mut g = netlink_packet_generic::GenlMessage::from_payload(IpvsMessage::new(
            IpvsCmd::GetDest,
            vec![],
        ));
        g.set_resolved_family_id(FAMILY);
        let mut m = netlink_packet_core::NetlinkMessage::from(g);
        m.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        m.header.sequence_number = 77;
        lvs_ipvs::codec::emit_message(&mut m)
    };
    let reply = kernel.lock().unwrap().handle(&bare);
    assert_eq!(reply.len(), 1);
    assert!(matches!(
        parse_message(&reply[0]).unwrap().payload,
        netlink_packet_core::NetlinkPayload::Done(_)
    ));
}

#[test]
fn dump_errors_and_interruptions_are_reported() {
    let (transport, _) = ScriptedTransport::new(|d| {
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        vec![replies::error(seq, errno::EPERM)]
    });
    let mut client = IpvsClient::with_family_id(transport, FAMILY);
    let err = client.services().unwrap_err();
    assert_eq!(err.errno(), Some(errno::EPERM), "{err:?}");
    assert_eq!(err.metric_label(), "kernel");

    let (transport, _) = ScriptedTransport::new(|d| {
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        let entry = IpvsMessage::new(
            IpvsCmd::NewService,
            vec![IpvsAttr::Service(Nested::new(service(0).to_attrs()))],
        );
        vec![
            replies::ipvs(FAMILY, seq, NLM_F_MULTIPART | NLM_F_DUMP_INTR, entry),
            replies::done(seq),
        ]
    });
    let mut client = IpvsClient::with_family_id(transport, FAMILY);
    assert!(matches!(
        client.services().unwrap_err(),
        Error::DumpInterrupted { .. }
    ));
}

#[test]
fn stale_replies_are_skipped_and_missing_replies_do_not_hang() {
    let (transport, _) = ScriptedTransport::new(|d| {
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        vec![replies::ack(seq.wrapping_add(1000)), replies::ack(seq)]
    });
    let mut client = IpvsClient::with_family_id(transport, FAMILY);
    assert_eq!(
        client.apply(&[Op::DelService(svc_key(0))]).unwrap(),
        vec![Ok(())]
    );

    let (transport, _) = ScriptedTransport::new(|_| vec![]);
    let mut client = IpvsClient::with_family_id(transport, FAMILY);
    let err = client.apply(&[Op::DelService(svc_key(0))]).unwrap_err();
    assert_eq!(err.metric_label(), "io");
}

/// A transport whose datagram did not fit the receive buffer.
struct Truncating;
impl Transport for Truncating {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        buf.extend_from_slice(&replies::done(1));
        Ok(100_000)
    }
}

#[test]
fn truncated_datagram_is_an_error() {
    let mut client = IpvsClient::with_family_id(Truncating, FAMILY);
    let err = client.services().unwrap_err();
    assert!(
        matches!(err, Error::Truncated { len: 100_000, .. }),
        "{err:?}"
    );
}

#[test]
fn single_gets_and_info() {
    let mut kernel = FakeKernel::default();
    kernel
        .services
        .insert(svc_key(0), (service(0), BTreeMap::new()));
    let (mut client, _, _) = fake_client(kernel);
    assert_eq!(
        client.service(&svc_key(0)).unwrap().map(|(s, _)| s),
        Some(service(0))
    );
    assert_eq!(client.service(&svc_key(1)).unwrap(), None);
    let info = client.info().unwrap();
    assert_eq!(info.version_string(), "1.2.1");
    assert_eq!(info.conn_tab_size, 4096);
}

#[test]
fn parallel_dump_gives_the_sequential_result() {
    let mut kernel = FakeKernel {
        per_datagram: 3,
        ..FakeKernel::default()
    };
    for i in 0..40 {
        let mut dests = BTreeMap::new();
        for j in 0..(i % 7) {
            let d = dest(j * 13 + i, 8000 + j as u16);
            dests.insert(d.key, d);
        }
        kernel.services.insert(svc_key(i), (service(i), dests));
    }
    let (mut client, _, kernel) = fake_client(kernel);
    let sequential = client.dump_all().unwrap();
    assert_eq!(sequential.len(), 40);
    for connections in [1, 2, 3, 8, 64] {
        let opened = Arc::new(Mutex::new(0));
        let before = client.counters().snapshot();
        let parallel = client
            .dump_all_parallel_with(connections, || {
                *opened.lock().unwrap() += 1;
                let k = Arc::clone(&kernel);
                Ok(ScriptedTransport::new(move |d| k.lock().unwrap().handle(d)).0)
            })
            .unwrap();
        let delta = client.counters().snapshot() - before;
        assert_eq!(parallel, sequential, "{connections} connections");
        assert_eq!(*opened.lock().unwrap(), connections);
        // Every socket counts in the client's counters: 1 + 40 dumps.
        assert_eq!(delta.requests, 41, "{connections} connections");
    }
}

#[test]
fn parallel_dump_reports_a_failed_destination_dump() {
    let mut kernel = FakeKernel::default();
    for i in 0..10 {
        kernel
            .services
            .insert(svc_key(i), (service(i), BTreeMap::new()));
    }
    let (mut client, _, kernel) = fake_client(kernel);
    let result = client.dump_all_parallel_with(2, || {
        let k = Arc::clone(&kernel);
        Ok(ScriptedTransport::new(move |d| {
            let mut replies = k.lock().unwrap().handle(d);
            let (header, msg) = &replies::requests(d)[0];
            let key = msg.nlas.iter().find_map(|a| match a {
                IpvsAttr::Service(n) => ServiceKey::from_attrs(&n.attrs).ok(),
                _ => None,
            });
            if msg.cmd == IpvsCmd::GetDest && key == Some(svc_key(5)) {
                // This service's dump ends in an error instead of DONE.
                replies.pop();
                replies.push(replies::error(header.sequence_number, errno::ENOMEM));
            }
            replies
        })
        .0)
    });
    match result {
        Err(Error::Kernel { errno: e, .. }) => assert_eq!(e, errno::ENOMEM),
        other => panic!("expected ENOMEM, got {other:?}"),
    }
    // An opening failure is reported too.
    let err = client
        .dump_all_parallel_with(2, || -> io::Result<ScriptedTransport> {
            Err(io::Error::other("no sockets left"))
        })
        .unwrap_err();
    assert!(matches!(err, Error::Io { action: "open", .. }), "{err:?}");
}
