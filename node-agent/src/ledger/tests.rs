use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::*;
use lvs_ipvs::{Family, Protocol};

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "lvs-agent-test-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn sample() -> Ledger {
    let mut l = Ledger::default();
    let key = ServiceKey::Tuple {
        addr: "10.0.0.1".parse().unwrap(),
        protocol: Protocol::TCP,
        port: 80,
    };
    l.services.insert(
        key,
        OwnedService {
            owner: "default/web".into(),
            dests: [DestKey {
                addr: "10.1.0.5".parse().unwrap(),
                port: 8080,
            }]
            .into_iter()
            .collect(),
        },
    );
    l.services.insert(
        ServiceKey::Fwmark {
            family: Family::V6,
            mark: 7,
        },
        OwnedService {
            owner: "default/fw".into(),
            dests: BTreeSet::new(),
        },
    );
    l.addresses.insert(AddrKey {
        interface: "lo".into(),
        addr: "fd00::1".parse().unwrap(),
        prefix_len: 128,
    });
    l.tunnels.insert(
        "tunl0".into(),
        OwnedTunnel {
            kind: TunnelKind::Ipip,
            brought_up: true,
            local: None,
        },
    );

    l.fou_ports.insert(FouPort {
        port: 5555,
        ipv6: false,
    });
    l.sysctls.insert(
        "net/ipv4/ip_forward".into(),
        OwnedSysctl {
            previous: "0".into(),
            value: "1".into(),
        },
    );
    l
}

#[test]
fn round_trip_through_the_file() {
    let dir = temp_dir("ledger-rt");
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), Ledger::default());
    let l = sample();
    assert!(store.save(&l).unwrap());
    // Unchanged: no second write.
    assert!(!store.save(&l).unwrap());
    drop(store);
    let mut again = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(again.load().unwrap(), l);
    let text = fs::read_to_string(dir.join(LEDGER_FILE)).unwrap();
    assert!(text.contains("\"owner\":\"default/web\""), "{text}");
    assert_eq!(text.lines().count(), 1, "compact, one line: {text}");
    assert!(text.contains("\"version\":1"), "{text}");
    // A device the agent created keeps its address, so that a restarted
    // agent deletes it on release.
    let mut l = l;
    l.tunnels.insert(
        "lvsg124b5f50".into(),
        OwnedTunnel {
            kind: TunnelKind::Gre,
            brought_up: true,
            local: Some("10.0.2.15".parse().unwrap()),
        },
    );
    assert!(again.save(&l).unwrap());
    drop(again);
    let mut again = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(again.load().unwrap(), l);
    let text = fs::read_to_string(dir.join(LEDGER_FILE)).unwrap();
    assert!(text.contains("\"local\":\"10.0.2.15\""), "{text}");
    fs::remove_dir_all(dir).unwrap();
}

/// `sample()` as the agent wrote it before IPVS keys were `lvs-ipvs`
/// types: an agent upgraded in place must adopt it, and write the same
/// shape back.
const SAMPLE_IN_THE_FIRST_FORMAT: &str = r#"{
  "version": 1,
  "services": [
{
  "key": { "type": "tuple", "addr": "10.0.0.1", "protocol": 6, "port": 80 },
  "owner": "default/web",
  "destinations": [ { "addr": "10.1.0.5", "port": 8080 } ]
},
{
  "key": { "type": "fwmark", "mark": 7, "ipv6": true },
  "owner": "default/fw",
  "destinations": []
}
  ],
  "addresses": [ { "interface": "lo", "addr": "fd00::1", "prefixLen": 128 } ],
  "tunnels": [ { "name": "tunl0", "kind": "ipip", "broughtUp": true } ],
  "fouPorts": [ { "port": 5555, "ipv6": false } ],
  "sysctls": [ { "key": "net/ipv4/ip_forward", "previous": "0", "value": "1" } ]
}"#;

#[test]
fn a_ledger_in_the_first_format_is_adopted_and_written_back_in_it() {
    let dir = temp_dir("ledger-first-format");
    fs::write(dir.join(LEDGER_FILE), SAMPLE_IN_THE_FIRST_FORMAT).unwrap();
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), sample());
    drop(store);

    let fresh = temp_dir("ledger-first-format-write");
    let mut store = LedgerStore::in_dir(&fresh).unwrap();
    store.load().unwrap();
    store.save(&sample()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&fs::read(fresh.join(LEDGER_FILE)).unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(SAMPLE_IN_THE_FIRST_FORMAT).unwrap();
    assert_eq!(written, first);
    fs::remove_dir_all(dir).unwrap();
    fs::remove_dir_all(fresh).unwrap();
}

#[test]
fn write_is_atomic_and_leaves_no_temporary_file() {
    let dir = temp_dir("ledger-atomic");
    let path = dir.join(LEDGER_FILE);
    write_atomically(&path, b"{\"version\":1}").unwrap();
    // Stale temporary files from a crash mid-write (the fixed name of
    // earlier versions, and unique ones) are not read, and are removed
    // once the store holds the directory's lock.
    fs::write(path.with_extension("json.tmp"), b"garbage").unwrap();
    fs::write(dir.join("ledger.json.a1B2c3.tmp"), b"garbage").unwrap();
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), Ledger::default());
    store.save(&sample()).unwrap();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["agent.lock".to_string(), LEDGER_FILE.to_string()]
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupt_and_future_ledgers_are_refused_and_can_be_moved_aside() {
    let dir = temp_dir("ledger-corrupt");
    let path = dir.join(LEDGER_FILE);
    fs::write(&path, b"{not json").unwrap();
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    let err = store.load().unwrap_err();
    assert_eq!(err.metric_label(), "ledger_corrupt", "{err}");
    let aside = store.quarantine().unwrap().unwrap();
    assert!(aside.exists() && !path.exists());
    assert_eq!(store.load().unwrap(), Ledger::default());

    fs::write(&path, b"{\"version\":9}").unwrap();
    let err = store.load().unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

fn web_key() -> ServiceKey {
    ServiceKey::Tuple {
        addr: "10.0.0.1".parse().unwrap(),
        protocol: Protocol::TCP,
        port: 80,
    }
}

#[test]
fn journal_entries_replay_over_the_file_and_a_save_folds_them_in() {
    let dir = temp_dir("ledger-journal");
    // Two scoped changes: a destination removed, an address added.
    let (l, journal) = journal_with_two_entries(&dir);
    assert_eq!(journal.lines().count(), 2, "{journal}");
    // Nothing changed: nothing appended.
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), l);
    let keys = [web_key()];
    let part = l.part(&keys, AddrScope::All);
    assert!(!store.append(&part, &part).unwrap());
    drop(store);
    assert_eq!(fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap(), journal);
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), l);

    // A line cut short by a crash is ignored; a broken line in the
    // middle is corruption.
    fs::write(
        dir.join(JOURNAL_FILE),
        format!("{journal}{{\"seq\":3,\"serv"),
    )
    .unwrap();
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), l);
    fs::write(dir.join(JOURNAL_FILE), format!("{{oops\n{journal}")).unwrap();
    let err = LedgerStore::in_dir(&dir).unwrap().load().unwrap_err();
    assert_eq!(err.metric_label(), "ledger_corrupt", "{err}");
    fs::write(dir.join(JOURNAL_FILE), &journal).unwrap();

    // A full save folds the journal in and removes it; entries the file
    // already holds are not replayed again (a crash between the rename
    // and the removal leaves them behind).
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), l);
    assert!(store.save(&l).unwrap());
    assert!(!dir.join(JOURNAL_FILE).exists());
    drop(store);
    fs::write(dir.join(JOURNAL_FILE), &journal).unwrap();
    let mut later = l.clone();
    later.services.remove(&web_key());
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), l);
    assert!(store.save(&later).unwrap());
    drop(store);
    fs::write(dir.join(JOURNAL_FILE), &journal).unwrap();
    assert_eq!(
        LedgerStore::in_dir(&dir).unwrap().load().unwrap(),
        later,
        "old entries must not bring the service back"
    );
    fs::remove_dir_all(dir).unwrap();
}

fn with_daemons(mut l: Ledger, interface: &str) -> Ledger {
    for state in [DaemonState::Master, DaemonState::Backup] {
        l.daemons.insert(
            state,
            DaemonSpec {
                state,
                interface: interface.into(),
                sync_id: 3,
            },
        );
    }
    l
}

#[test]
fn sync_daemons_round_trip_through_the_file_and_the_journal() {
    let dir = temp_dir("ledger-daemons");
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    store.load().unwrap();
    let l = with_daemons(sample(), "eth0");
    store.save(&l).unwrap();
    let text = fs::read_to_string(dir.join(LEDGER_FILE)).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        file["daemons"],
        serde_json::json!([
            { "state": "master", "interface": "eth0", "syncId": 3 },
            { "state": "backup", "interface": "eth0", "syncId": 3 },
        ]),
        "{text}"
    );

    // A scoped sync that replaces them, then one that stops them.
    let keys = [web_key()];
    let all = AddrScope::All;
    let moved = with_daemons(sample(), "eth1");
    assert!(
        store
            .append(&l.part(&keys, all), &moved.part(&keys, all))
            .unwrap()
    );
    drop(store);
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), moved);
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    store.load().unwrap();
    assert!(
        store
            .append(&moved.part(&keys, all), &sample().part(&keys, all))
            .unwrap()
    );
    drop(store);
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), sample());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn restore_puts_a_part_back() {
    let mut l = sample();
    let keys = [web_key()];
    let vips = BTreeSet::new();
    let interfaces = BTreeSet::from(["lo".to_string()]);
    let covers = AddrScope::Part {
        vips: &vips,
        interfaces: &interfaces,
    };
    let part = l.part(&keys, covers);
    l.services.remove(&web_key());
    l.addresses.clear();
    l.sysctls.clear();
    l.restore(part, covers);
    assert_eq!(l, sample());
}

/// Two scoped changes appended to a saved sample: the store (dropped,
/// so its lock is released), the ledger after them, and the journal.
fn journal_with_two_entries(dir: &Path) -> (Ledger, String) {
    let mut store = LedgerStore::in_dir(dir).unwrap();
    let mut l = sample();
    store.save(&l).unwrap();
    let (all, keys) = (AddrScope::All, [web_key()]);
    let before = l.part(&keys, all);
    l.services.get_mut(&web_key()).unwrap().dests.clear();
    assert!(store.append(&before, &l.part(&keys, all)).unwrap());
    let before = l.part(&keys, all);
    l.addresses.insert(AddrKey {
        interface: "eth0".into(),
        addr: "10.0.0.1".parse().unwrap(),
        prefix_len: 32,
    });
    assert!(store.append(&before, &l.part(&keys, all)).unwrap());
    drop(store);
    (l, fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap())
}

/// One more scoped change through a fresh store: the ledger loads as
/// `expect`, then gains a service.
fn reload_and_append(dir: &Path, expect: &Ledger) -> Ledger {
    let mut store = LedgerStore::in_dir(dir).unwrap();
    let mut l = store.load().unwrap();
    assert_eq!(&l, expect);
    let key = ServiceKey::Tuple {
        addr: "10.0.0.2".parse().unwrap(),
        protocol: Protocol::TCP,
        port: 443,
    };
    let before = l.part(&[key], AddrScope::All);
    l.services.insert(
        key,
        OwnedService {
            owner: "default/tls".into(),
            dests: BTreeSet::new(),
        },
    );
    assert!(
        store
            .append(&before, &l.part(&[key], AddrScope::All))
            .unwrap()
    );
    l
}

#[test]
fn a_torn_tail_is_cut_off_at_load_so_the_next_append_reloads() {
    let dir = temp_dir("ledger-torn");
    let (l, journal) = journal_with_two_entries(&dir);
    // A crash (or ENOSPC) cut the third record short: no newline.
    let third = journal.lines().last().unwrap();
    let torn = &third[..third.len() / 2];
    fs::write(dir.join(JOURNAL_FILE), format!("{journal}{torn}")).unwrap();
    let after = reload_and_append(&dir, &l);
    // The torn bytes are gone: the journal is the two records plus the
    // new one, and it loads with everything.
    let text = fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
    assert!(text.starts_with(&journal), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), after);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_append_cuts_off_what_a_failed_append_left() {
    let dir = temp_dir("ledger-failed-append");
    let (l, _) = journal_with_two_entries(&dir);
    let mut store = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(store.load().unwrap(), l);
    // What a short write (ENOSPC) leaves: part of a record, no newline.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(dir.join(JOURNAL_FILE))
        .unwrap();
    f.write_all(b"0badc0de {\"seq\":3,\"servi").unwrap();
    drop(f);
    let mut after = l.clone();
    let key = web_key();
    let before = after.part(&[key], AddrScope::All);
    after.services.remove(&key);
    assert!(
        store
            .append(&before, &after.part(&[key], AddrScope::All))
            .unwrap()
    );
    drop(store);
    let text = fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
    assert!(!text.contains("0badc0de"), "{text}");
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), after);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_record_failing_its_checksum_is_torn_at_the_tail_and_corrupt_in_the_middle() {
    let dir = temp_dir("ledger-checksum");
    let (l, journal) = journal_with_two_entries(&dir);
    let lines: Vec<&str> = journal.lines().collect();
    // The second record says the address is on eth0; a flipped byte
    // (as storage can return after a crash) says eth1: valid JSON, but
    // not what was written.
    assert!(lines[1].contains("\"eth0\""), "{journal}");
    let flipped = lines[1].replace("\"eth0\"", "\"eth1\"");
    fs::write(dir.join(JOURNAL_FILE), format!("{}\n{flipped}\n", lines[0])).unwrap();
    let mut without_second = l.clone();
    without_second.addresses.retain(|a| a.interface != "eth0");
    let after = reload_and_append(&dir, &without_second);
    assert!(
        !fs::read_to_string(dir.join(JOURNAL_FILE))
            .unwrap()
            .contains("eth1")
    );
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), after);

    // The same record followed by a valid one: damage, not a crash.
    fs::write(dir.join(JOURNAL_FILE), format!("{flipped}\n{}\n", lines[0])).unwrap();
    let err = LedgerStore::in_dir(&dir).unwrap().load().unwrap_err();
    assert_eq!(err.metric_label(), "ledger_corrupt", "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_second_store_on_the_same_dir_is_refused_naming_the_holder() {
    let dir = temp_dir("ledger-lock");
    let mut first = LedgerStore::in_dir(&dir).unwrap();
    assert_eq!(first.load().unwrap(), Ledger::default());
    let err = LedgerStore::in_dir_waiting(&dir, Duration::from_millis(300)).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.metric_label(), "ledger_locked", "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "the error names the holder's pid: {msg}"
    );
    assert!(msg.contains("command: "), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    // The first store is unaffected.
    assert!(first.save(&sample()).unwrap());
    assert_eq!(first.load().unwrap(), sample());
    drop(first);
    // Released with the store.
    assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), sample());
    fs::remove_dir_all(dir).unwrap();
}
