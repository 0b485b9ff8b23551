use super::*;

#[test]
fn sysctl_keys_must_stay_under_proc_sys() {
    let root = std::path::Path::new("/proc/sys");
    assert_eq!(
        sysctl_path(root, "net/ipv4/conf/eth0.100/rp_filter").unwrap(),
        std::path::Path::new("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
    );
    for bad in [
        "../etc/passwd",
        "/net/ipv4",
        "net//x",
        "net/ipv4/../../x",
        "net/ipv4 x",
        "",
    ] {
        assert!(sysctl_path(root, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sysctls_go_through_the_configured_root() {
    let root = std::env::temp_dir().join(format!("lvs-proc-sys-{}", std::process::id()));
    let dir = root.join("net/ipv4/conf/all");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("arp_ignore"), "0\n").unwrap();
    let mut dp = NetlinkDataplane::new()
        .expect("an rtnetlink socket")
        .with_sysctl_root(&root);
    assert_eq!(dp.read_sysctl("net/ipv4/conf/all/arp_ignore").unwrap(), "0");
    dp.write_sysctl("net/ipv4/conf/all/arp_ignore", "1")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("arp_ignore")).unwrap(),
        "1\n"
    );
    // A key missing under the root is an error, not a read of /proc/sys.
    assert!(dp.read_sysctl("net/ipv4/ip_forward").is_err());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn label_equal_to_the_interface_name_is_no_label() {
    let names: BTreeMap<u32, String> = [(2, "eth0".to_string())].into_iter().collect();
    let mut m = address_message(
        2,
        &Address {
            interface: "eth0".into(),
            addr: "10.0.0.1".parse().unwrap(),
            prefix_len: 32,
            label: None,
            scope: Scope::Global,
            kind: AddrKind::Interface,
        },
    );
    m.attributes.push(AddressAttribute::Label("eth0".into()));
    assert_eq!(address_of(&m, &names).unwrap().label, None);
    m.attributes.pop();
    m.attributes
        .push(AddressAttribute::Label("eth0:lvs".into()));
    m.header.scope = AddressScope::Host;
    let a = address_of(&m, &names).unwrap();
    assert_eq!(a.label.as_deref(), Some("eth0:lvs"));
    assert_eq!(a.scope, Scope::Host);
    assert_eq!(a.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
}
