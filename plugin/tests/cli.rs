//! The binary as users run it: YAML on stdout, the report on stderr, exit
//! status 1 with the line on malformed input, 2 on a usage error.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-lvs"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl-lvs starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin takes the input");
    child.wait_with_output().expect("kubectl-lvs ends")
}

#[test]
fn import_from_stdin_writes_yaml_and_a_report() {
    let out = run(
        &[
            "import",
            "ipvsadm",
            "-",
            "--namespace",
            "lb",
            "--directors",
            "role=director,zone=a",
            "--name-prefix",
            "edge",
        ],
        "-A -t 192.0.2.1:80 -s rr --pe sip\n-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 2\n",
    );
    assert!(out.status.success(), "{out:?}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    let objects = lvs_api::manifest::parse(&yaml).expect("the agent reads the output");
    assert_eq!(objects.len(), 2);
    let lvs_api::manifest::Manifest::VirtualService(vs) = &objects[0] else {
        panic!("first object is not a VirtualService: {yaml}")
    };
    assert_eq!(vs.meta.name, "edge-tcp-192-0-2-1-80");
    assert_eq!(vs.meta.namespace, "lb");
    assert_eq!(vs.spec.directors.node_selector.match_labels.len(), 2);
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "line 1: option `--pe sip` not carried: persistence engines are not supported\n\
         imported 1 VirtualService, 1 RealServer; 1 line or option not carried over\n"
    );
}

#[test]
fn malformed_input_fails_with_its_line() {
    let out = run(
        &["import", "keepalived", "-"],
        "virtual_server 192.0.2.1 80 {\n  protocol TCP\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "<stdin>: line 1: the block of `virtual_server` is never closed (missing `}`)\n"
    );
}

#[test]
fn usage_errors() {
    let out = run(&["import", "haproxy", "-"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["import", "ipvsadm", "-", "--directors", "nokey"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--directors \"nokey\": `nokey` is not key=value"),
    );
    let out = run(&["import", "ipvsadm", "/nonexistent/rules"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("reading /nonexistent/rules")
    );
}

#[test]
fn live_commands_refuse_bad_arguments_before_connecting() {
    // No kubeconfig at all: the arguments are checked first, exit 2.
    let cases: [(&[&str], &str); 4] = [
        (
            &["get", "a/b/c"],
            "\"a/b/c\": expected NAME or NAMESPACE/NAME",
        ),
        (&["table", "Dir_1"], "node \"Dir_1\": expected a node name"),
        (&["diff", "Dir_1"], "node \"Dir_1\": expected a node name"),
        (
            &["top", "-A", "-n", "lb"],
            "--all-namespaces and --namespace",
        ),
    ];
    for (args, want) in cases {
        let out = run(args, "");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = run(&["top", "--interval", "500ms"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("expected at least 1s")
    );
}

#[test]
fn an_unreachable_api_server_is_an_error_and_diff_exits_2() {
    let dir = std::env::temp_dir().join(format!("kubectl-lvs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    // A port nothing listens on.
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:9\"}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let kc = kc.to_str().unwrap();
    let out = run(&["get", "--kubeconfig", kc], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("listing VirtualServices in namespace default")
    );
    let out = run(&["diff", "--kubeconfig", kc], "");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["get", "--kubeconfig", kc, "--context", "nope"], "");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("using kubeconfig"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
