//! The daemon's signals, on the real binary (standalone mode, fake
//! dataplane): SIGHUP asks for a full resync at once, SIGTERM stops it.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Full syncs in the log so far.
fn full_syncs(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("sync done") && l.contains("full=true"))
        .count()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_starts_a_full_resync_and_sigterm_stops_the_daemon() {
    let dir = std::env::temp_dir().join(format!("lvs-agent-signals-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nat.yaml"),
        config.join("nat.yaml"),
    )
    .unwrap();
    let log = dir.join("agent.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["--config-dir", config.to_str().unwrap()])
        .args([
            "--node-name",
            "n1",
            "--node-ip",
            "192.0.2.1",
            "--dataplane",
            "fake",
        ])
        .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
        // No timer resync during the test: every full sync after the first
        // is the signal's.
        .args(["--resync-interval", "3600"])
        .env("LVS_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting node-agent");

    wait_for("the first full sync", Duration::from_secs(30), || {
        full_syncs(&log) >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(full_syncs(&log), 1, "one full sync before any signal");

    for want in [2, 3] {
        signal(&child, "HUP");
        wait_for("a full sync after SIGHUP", Duration::from_secs(30), || {
            full_syncs(&log) >= want
        });
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP does not stop it"
    );

    signal(&child, "TERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "SIGTERM: still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "exit {status}; log:\n{text}");
    assert_eq!(
        text.matches("SIGHUP: full resync requested").count(),
        2,
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
