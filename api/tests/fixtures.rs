//! Replays the admission fixture table against the Rust validator. The
//! cluster lab replays the same files against a real API server, which must
//! refuse each invalid file with a message containing the same text.

use std::path::{Path, PathBuf};

use lvs_api::manifest;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_fixture_is_refused_with_its_expected_message() {
    let files = yaml_files(&repo().join("crds/tests/invalid"));
    assert!(
        files.len() >= 40,
        "the bad-input table needs at least 40 cases, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: first line must be `# expect: <substring>`",
                    f.display()
                )
            })
            .trim();
        match manifest::parse(&text) {
            Ok(_) => failures.push(format!(
                "{}: accepted, expected refusal with {expect:?}",
                f.display()
            )),
            Err(e) if !e.to_string().contains(expect) => failures.push(format!(
                "{}: refused with {:?}, expected it to contain {expect:?}",
                f.display(),
                e.to_string()
            )),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn every_valid_fixture_and_example_is_accepted() {
    let mut files = yaml_files(&repo().join("crds/tests/valid"));
    assert!(
        files.len() >= 10,
        "need at least 10 valid fixtures, found {}",
        files.len()
    );
    let examples = yaml_files(&repo().join("examples"));
    assert!(
        examples.len() >= 3,
        "examples/ needs NAT, DR and TUN, found {}",
        examples.len()
    );
    files.extend(examples);
    // Examples with a README of their own live in subdirectories.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.iter().any(|d| d.ends_with("ha")),
        "examples/ha (director HA) is missing"
    );
    let mut kube_only = Vec::new();
    for d in dirs {
        let found = yaml_files(&d);
        assert!(!found.is_empty(), "{}: no YAML files", d.display());
        // examples/loadbalancer holds Kubernetes objects (Service, pool) that
        // manifest files do not take: only its VirtualServices and
        // RealServers are checked here.
        if d.ends_with("loadbalancer") {
            kube_only.extend(found);
        } else {
            files.extend(found);
        }
    }
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let parsed = manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!parsed.is_empty(), "{}: no objects", f.display());
    }
    let mut checked = 0;
    for f in &kube_only {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in text.split("\n---\n") {
            let ours = doc
                .lines()
                .any(|l| l == "kind: VirtualService" || l == "kind: RealServer");
            if ours {
                let parsed =
                    manifest::parse(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                checked += parsed.len();
            }
        }
    }
    assert!(
        checked > 0,
        "examples/loadbalancer: no VirtualService or RealServer to check"
    );
}
