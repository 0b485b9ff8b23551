use super::*;
use std::io::Write;

const VS: &str = r#"
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  address: 10.0.0.1
  port: 80
  directors: {nodeSelector: {}}
  realServerSelector: {matchLabels: {app: web}}
"#;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lvs-agent-src-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn reads_yaml_files_in_order_and_ignores_others() {
    let d = dir("order");
    std::fs::write(d.join("a.yaml"), VS).unwrap();
    std::fs::write(d.join("b.yml"), VS.replace("10.0.0.1", "10.0.0.2")).unwrap();
    std::fs::write(d.join("notes.txt"), "not yaml: [").unwrap();
    std::fs::write(d.join(".hidden.yaml"), "garbage: [").unwrap();
    let s = DirSource::load(&d).unwrap();
    assert_eq!(
        s.virtual_services.len(),
        1,
        "same name: the later file wins"
    );
    assert_eq!(
        s.virtual_services[0].spec.address.as_deref(),
        Some("10.0.0.2")
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn errors_name_the_file_the_field_and_the_reason() {
    let d = dir("errors");
    std::fs::write(d.join("good.yaml"), VS).unwrap();
    std::fs::write(d.join("bad.yaml"), VS.replace("port: 80", "port: 70000")).unwrap();
    std::fs::write(d.join("worse.yaml"), "kind: [").unwrap();
    let errors = DirSource::load(&d).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let bad = errors[0].to_string();
    assert!(bad.contains("bad.yaml"), "{bad}");
    assert!(bad.contains("spec.port"), "{bad}");
    assert!(bad.contains("70000"), "{bad}");
    assert!(
        errors[1].to_string().contains("worse.yaml"),
        "{}",
        errors[1]
    );
    let missing = DirSource::load(&d.join("nope")).unwrap_err();
    assert!(
        missing[0]
            .message
            .contains("cannot read the configuration directory")
    );
    std::fs::remove_dir_all(d).unwrap();
}

fn names<T>(c: &[Change<T>], key: impl Fn(&T) -> String) -> Vec<String> {
    c.iter()
        .map(|c| match c {
            Change::Upsert(o) => format!("+{}", key(o)),
            Change::Delete(k) => format!("-{k}"),
        })
        .collect()
}

fn vs_names(c: &Changes) -> Vec<String> {
    names(&c.virtual_services, |o| o.meta.key())
}

/// A directory with VirtualService `web` in a.yaml and `api` in b.yaml.
fn web_and_api(tag: &str) -> PathBuf {
    let d = dir(tag);
    std::fs::write(d.join("a.yaml"), VS).unwrap();
    std::fs::write(d.join("b.yaml"), VS.replace("name: web", "name: api")).unwrap();
    d
}

#[test]
fn dir_state_reads_only_what_changed_and_the_last_file_wins() {
    let d = web_and_api("state");
    let mut st = DirState::default();
    let c = st.refresh(&d).unwrap().unwrap();
    assert_eq!(vs_names(&c), ["+default/api", "+default/web"]);
    assert!(st.refresh(&d).unwrap().is_none(), "nothing changed");

    // The same object in a later file wins; removing that file brings
    // the earlier version back.
    std::fs::write(d.join("c.yaml"), VS.replace("10.0.0.1", "10.0.0.9")).unwrap();
    let c = st.refresh(&d).unwrap().unwrap();
    assert_eq!(vs_names(&c), ["+default/web"]);
    let Change::Upsert(o) = &c.virtual_services[0] else {
        panic!()
    };
    assert_eq!(o.spec.address.as_deref(), Some("10.0.0.9"));
    std::fs::remove_file(d.join("c.yaml")).unwrap();
    let c = st.refresh(&d).unwrap().unwrap();
    let Change::Upsert(o) = &c.virtual_services[0] else {
        panic!()
    };
    assert_eq!(o.spec.address.as_deref(), Some("10.0.0.1"));

    // A file rewritten with the same content changes nothing; a
    // removed file deletes its objects.
    std::fs::write(
        d.join("b.yaml"),
        format!("{}\n", VS.replace("name: web", "name: api")),
    )
    .unwrap();
    assert!(st.refresh(&d).unwrap().unwrap().is_empty());
    std::fs::remove_file(d.join("b.yaml")).unwrap();
    assert_eq!(
        vs_names(&st.refresh(&d).unwrap().unwrap()),
        ["-default/api"]
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_wake_up_reads_the_files_it_names_and_a_poll_waits_for_a_still_stamp() {
    let d = web_and_api("scope");
    let mut st = DirState::default();
    let only_b: BTreeSet<OsString> = ["b.yaml".into()].into();
    // The first read takes everything, whatever the scope.
    let c = st
        .refresh_within(&d, ReadScope::Named(&only_b))
        .unwrap()
        .unwrap();
    assert_eq!(vs_names(&c), ["+default/api", "+default/web"]);

    // a.yaml half-written in place (its writer has not closed it), b.yaml
    // written and closed: the wake-up names b.yaml only.
    std::fs::write(d.join("a.yaml"), "").unwrap();
    std::fs::write(
        d.join("b.yaml"),
        VS.replace("name: web", "name: api")
            .replace("10.0.0.1", "10.0.0.22"),
    )
    .unwrap();
    let c = st
        .refresh_within(&d, ReadScope::Named(&only_b))
        .unwrap()
        .unwrap();
    assert_eq!(vs_names(&c), ["+default/api"], "a.yaml is not read");

    // A poll that sees a.yaml changed for the first time leaves it; so does
    // the next one while the writer goes on (the stamp moves).
    assert!(st.refresh_within(&d, ReadScope::Settled).unwrap().is_none());
    assert_eq!(st.unsettled(), 1);
    std::fs::write(d.join("a.yaml"), "# part\n").unwrap();
    assert!(st.refresh_within(&d, ReadScope::Settled).unwrap().is_none());
    std::fs::write(d.join("a.yaml"), VS.replace("10.0.0.1", "10.0.0.11")).unwrap();
    assert!(
        st.refresh_within(&d, ReadScope::Settled).unwrap().is_none(),
        "the final stamp seen once"
    );
    // Seen twice: read.
    let c = st.refresh_within(&d, ReadScope::Settled).unwrap().unwrap();
    assert_eq!(vs_names(&c), ["+default/web"]);
    let Change::Upsert(o) = &c.virtual_services[0] else {
        panic!()
    };
    assert_eq!(o.spec.address.as_deref(), Some("10.0.0.11"));
    assert_eq!(st.unsettled(), 0);

    // A removal needs no settling; a file a wake-up names needs none.
    std::fs::remove_file(d.join("b.yaml")).unwrap();
    assert_eq!(
        vs_names(&st.refresh_within(&d, ReadScope::Settled).unwrap().unwrap()),
        ["-default/api"]
    );
    std::fs::write(d.join("a.yaml"), VS).unwrap();
    let only_a: BTreeSet<OsString> = ["a.yaml".into()].into();
    assert_eq!(
        vs_names(
            &st.refresh_within(&d, ReadScope::Named(&only_a))
                .unwrap()
                .unwrap()
        ),
        ["+default/web"]
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn dir_state_keeps_the_last_good_state_on_errors() {
    let d = dir("state-err");
    std::fs::write(d.join("a.yaml"), VS).unwrap();
    let mut st = DirState::default();
    st.refresh(&d).unwrap().unwrap();
    std::fs::write(d.join("a.yaml"), VS.replace("port: 80", "port: 70000")).unwrap();
    let e = st.refresh(&d).unwrap_err();
    assert!(e[0].to_string().contains("spec.port"), "{e:?}");
    assert!(
        st.refresh(&d).unwrap().is_none(),
        "not read again until it changes"
    );
    // Fixed with another address: one upsert against the last good state.
    std::fs::write(d.join("a.yaml"), VS.replace("10.0.0.1", "10.0.0.2")).unwrap();
    assert_eq!(
        vs_names(&st.refresh(&d).unwrap().unwrap()),
        ["+default/web"]
    );

    // An empty directory's first read is a (empty) state too.
    let e = dir("state-empty");
    let mut st = DirState::default();
    assert_eq!(st.refresh(&e).unwrap(), Some(Changes::default()));
    assert!(st.refresh(&e).unwrap().is_none());
    std::fs::remove_dir_all(d).unwrap();
    std::fs::remove_dir_all(e).unwrap();
}

/// The changes the running source hands over next, or a failure naming
/// what was awaited.
fn next_changes(rx: &std::sync::mpsc::Receiver<Event>, what: &str) -> Changes {
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Event::Changes(c, _)) => *c,
        Ok(other) => panic!("{what}: expected changes, got {other:?}"),
        Err(e) => panic!("{what}: no changes within 20 s ({e}); the poll is an hour"),
    }
}

#[test]
fn a_renamed_or_removed_manifest_is_read_at_once_without_waiting_for_the_poll() {
    let d = dir("watch");
    std::fs::write(d.join("a.yaml"), VS).unwrap();
    // Written beside the manifests, under a name the source ignores, before
    // the source starts: its own close would wake the source once more, and
    // that read could fall in the middle of the rewrite below.
    std::fs::write(d.join("b.tmp"), VS.replace("name: web", "name: api")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let src = DirSource::new(&d, Duration::from_secs(3600), Arc::new(Metrics::default()));
    rt.spawn(src.run(SnapshotSink::new(tx)));
    assert_eq!(
        vs_names(&next_changes(&rx, "the first read")),
        ["+default/web"]
    );

    // Renamed into place: one change, at once.
    std::fs::rename(d.join("b.tmp"), d.join("b.yaml")).unwrap();
    assert_eq!(vs_names(&next_changes(&rx, "the rename")), ["+default/api"]);

    // Rewritten in place: seen once the writer closes the file.
    std::fs::write(
        d.join("b.yaml"),
        VS.replace("name: web", "name: api")
            .replace("10.0.0.1", "10.0.0.3"),
    )
    .unwrap();
    assert_eq!(
        vs_names(&next_changes(&rx, "the rewrite")),
        ["+default/api"]
    );

    // Rewritten in place while another file is written and closed: the
    // other file's wake-up does not read the half-written one.
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(d.join("b.yaml"))
        .unwrap();
    w.write_all(b"# being written\n").unwrap();
    std::fs::write(d.join("c.yaml"), VS.replace("name: web", "name: db")).unwrap();
    assert_eq!(
        vs_names(&next_changes(&rx, "another file written meanwhile")),
        ["+default/db"]
    );
    w.write_all(
        VS.replace("name: web", "name: api")
            .replace("10.0.0.1", "10.0.0.4")
            .as_bytes(),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        vs_names(&next_changes(&rx, "the rewrite closed")),
        ["+default/api"]
    );

    std::fs::remove_file(d.join("a.yaml")).unwrap();
    assert_eq!(
        vs_names(&next_changes(&rx, "the removal")),
        ["-default/web"]
    );
    drop(rt);
    std::fs::remove_dir_all(d).unwrap();
}
