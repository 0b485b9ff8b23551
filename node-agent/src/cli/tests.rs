use super::*;

fn parse(args: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("node-agent").chain(args.iter().copied()))
}

#[test]
fn ha_flags_and_their_defaults() {
    let a = parse(&["--node-name", "n1", "--config-dir", "/x"]).unwrap();
    assert!(!a.ha);
    assert_eq!(a.ha_lease_duration, Duration::from_secs(1));
    assert_eq!(a.ha_renew_interval, Duration::from_millis(250));
    assert_eq!(a.ha_probe_timeout, Duration::from_millis(300));
    assert_eq!(a.ha_vip_lifetime, Duration::from_secs(2));
    assert_eq!(a.ha_preempt_delay, Duration::from_secs(10));
    assert_eq!(vip_roles(&a), crate::ha::VipRoles::Off);
    let a = parse(&[
        "--node-name",
        "n1",
        "--config-dir",
        "/x",
        "--ha-role",
        "10.0.0.1=active",
        "--ha-role",
        "10.0.0.2=standby",
        "--ha-lease-duration",
        "3",
    ])
    .unwrap();
    assert_eq!(a.ha_lease_duration, Duration::from_secs(3));
    let crate::ha::VipRoles::Assigned {
        roles,
        default: None,
    } = vip_roles(&a)
    else {
        panic!("roles given but not assigned");
    };
    assert_eq!(roles.len(), 2);
    assert_eq!(
        roles[&"10.0.0.2".parse::<IpAddr>().unwrap()],
        crate::ha::Role::Standby
    );
    let e = parse(&["--node-name", "n1", "--ha-role", "10.0.0.1=leader"]).unwrap_err();
    assert!(e.to_string().contains("leader"), "{e}");
    assert!(parse_duration("0ms").is_err());
    for zero in ["0", "0s", "0ms"] {
        assert_eq!(parse_delay(zero), Ok(Duration::ZERO), "{zero}");
    }
    assert_eq!(parse_delay("1500ms"), Ok(Duration::from_millis(1500)));
    assert!(parse_delay("soon").is_err());
    let a = parse(&["--node-name=n1", "--ha", "--ha-vip-lifetime=3s"]).unwrap();
    let c = agent_config(&a);
    assert_eq!(
        c.vip_lifetime.map(|l| (l.seconds, l.renew_interval)),
        Some((3, Duration::from_millis(250))),
        "the VIP lifetime is its own knob, not the lease duration"
    );
    assert!(parse_duration("2 minutes").is_err());
}

#[test]
fn a_default_role_alone_turns_standalone_ha_on() {
    let a = parse(&[
        "--node-name",
        "n1",
        "--config-dir",
        "/x",
        "--ha-default-role",
        "standby",
    ])
    .unwrap();
    assert_eq!(
        vip_roles(&a),
        crate::ha::VipRoles::Assigned {
            roles: Default::default(),
            default: Some(crate::ha::Role::Standby)
        }
    );
    assert!(agent_config(&a).vip_lifetime.is_some(), "renewed VIPs");
    let once = parse(&[
        "--node-name",
        "n1",
        "--config-dir",
        "/x",
        "--once",
        "--ha-default-role",
        "active",
    ])
    .unwrap();
    assert!(
        agent_config(&once).vip_lifetime.is_none(),
        "--once cannot renew a finite VIP lifetime"
    );
    let e = parse(&["--node-name", "n1", "--ha-default-role", "master"]).unwrap_err();
    assert!(e.to_string().contains("master"), "{e}");
}

#[test]
fn kubernetes_mode_is_the_default_and_takes_the_charts_flags() {
    // Exactly what charts/lvs-operator/templates/agent-daemonset.yaml passes.
    let a = parse(&[
        "--node-name=n1",
        "--state-dir=/var/lib/lvs-agent",
        "--proc-sys=/host/proc/sys",
        "--resync-interval=30",
        "--listen=[192.0.2.7]:9477",
        "--log-format=json",
    ])
    .unwrap();
    assert_eq!(a.listen, "192.0.2.7:9477".parse().unwrap());
    assert_eq!(a.config_dir, None, "Kubernetes mode");
    assert_eq!(a.proc_sys, PathBuf::from("/host/proc/sys"));
    assert_eq!(a.dataplane, DataplaneKind::Netlink);
    assert_eq!(a.log_format, lvs_runtime::logging::LogFormat::Json);
    let a = parse(&["--node-name=n1", "--dataplane=fake", "--kubeconfig=/k"]).unwrap();
    assert_eq!(a.log_format, lvs_runtime::logging::LogFormat::Text);
    assert_eq!(a.dataplane, DataplaneKind::Fake);
    assert_eq!(a.proc_sys, PathBuf::from("/proc/sys"));
    assert_eq!(a.kubeconfig, Some(PathBuf::from("/k")));
}

#[test]
fn listen_is_loopback_by_default_and_takes_both_families_in_brackets() {
    let a = parse(&["--node-name=n1"]).unwrap();
    assert_eq!(a.listen, "127.0.0.1:9477".parse().unwrap());
    let l = http_limits(&a);
    assert_eq!(l, lvs_runtime::http::Limits::default());
    for (arg, want) in [
        ("--listen=10.0.0.1:1", "10.0.0.1:1"),
        ("--listen=[10.0.0.1]:2", "10.0.0.1:2"),
        ("--listen=[fd00::1]:3", "[fd00::1]:3"),
        ("--listen=0.0.0.0:4", "0.0.0.0:4"),
    ] {
        assert_eq!(
            parse(&["--node-name=n1", arg]).unwrap().listen,
            want.parse().unwrap(),
            "{arg}"
        );
    }
    for bad in [
        "--listen=fd00::1:9477",
        "--listen=[]:1",
        "--listen=[x]:1",
        "--listen=[10.0.0.1]:x",
        "--listen=[10.0.0.1]",
    ] {
        let e = parse(&["--node-name=n1", bad]).unwrap_err().to_string();
        assert!(e.contains("expected IP:PORT or [IP]:PORT"), "{bad}: {e}");
    }
    let a = parse(&[
        "--node-name=n1",
        "--http-timeout=2",
        "--http-max-connections=7",
    ])
    .unwrap();
    let l = http_limits(&a);
    assert_eq!(
        (l.max_connections, l.header_timeout, l.deadline),
        (7, Duration::from_secs(2), Duration::from_secs(2))
    );
    assert!(parse(&["--node-name=n1", "--http-max-connections=0"]).is_err());
    let a = parse(&[
        "--node-name=n1",
        "--http-header-timeout=30",
        "--http-timeout=40",
    ])
    .unwrap();
    let l = http_limits(&a);
    assert_eq!(
        (l.header_timeout, l.deadline),
        (Duration::from_secs(30), Duration::from_secs(40))
    );
}

#[test]
fn conflicting_or_incomplete_flags_are_refused() {
    assert!(parse(&["--node-name=n1", "--config-dir=/d", "--kubeconfig=/k"]).is_err());
    assert!(
        parse(&["--node-name=n1", "--once"]).is_err(),
        "--once needs --config-dir"
    );
    assert!(parse(&["--node-name=n1", "--dataplane=ebpf"]).is_err());
    assert!(parse(&["--node-name=n1", "--log-format=xml"]).is_err());
    assert!(parse(&["--state-dir=/s"]).is_err(), "no node name");
}

#[test]
fn netlink_needs_a_state_dir() {
    let a = parse(&["--node-name=n1", "--config-dir=/nonexistent", "--once"]).unwrap();
    let e = run(a, netlink_reconciler).unwrap_err().to_string();
    assert!(e.contains("--state-dir"), "{e}");
}
