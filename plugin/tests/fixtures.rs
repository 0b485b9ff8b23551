//! Every fixture imports with exactly its expected report, and what comes
//! out is what the standalone agent's manifest reader (with the admission
//! rules) accepts.

use std::path::{Path, PathBuf};

use lvs_api::manifest::{self, Manifest};
use lvs_kubectl::import::build::{self, DEFAULT_DIRECTORS, Options};
use lvs_kubectl::import::{Format, fuzzing, parse};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn opts() -> Options {
    Options {
        namespace: "default".into(),
        directors: build::parse_selector(DEFAULT_DIRECTORS).unwrap(),
        interface: None,
        prefix: "imported".into(),
    }
}

/// Imports a fixture: its objects as the agent reads them, and the report.
fn import(format: Format, rel: &str) -> (Vec<Manifest>, Vec<String>) {
    let text = std::fs::read_to_string(dir().join(rel)).unwrap();
    let draft = parse(format, &text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let out = build::build(draft, &opts());
    let yaml = out.to_yaml().unwrap();
    let objects = manifest::parse(&yaml).unwrap_or_else(|e| panic!("{rel}: {e}\n{yaml}"));
    (objects, out.notes.iter().map(ToString::to_string).collect())
}

fn counts(m: &[Manifest]) -> (usize, usize) {
    let vs = m
        .iter()
        .filter(|o| matches!(o, Manifest::VirtualService(_)))
        .count();
    (vs, m.len() - vs)
}

#[test]
fn ipvsadm_fixtures_import_whole() {
    for (file, vs, rs) in [
        ("nat-web.rules", 2, 5),
        ("dr-persistence.rules", 2, 4),
        ("tun.rules", 3, 7),
        ("ipv6.rules", 2, 4),
        ("fwmark.rules", 4, 5),
        ("sctp-mixed.rules", 3, 6),
    ] {
        let (m, notes) = import(Format::Ipvsadm, &format!("ipvsadm/{file}"));
        assert_eq!(counts(&m), (vs, rs), "{file}");
        assert!(notes.is_empty(), "{file}: {notes:#?}");
    }
}

#[test]
fn keepalived_fixtures_import_with_their_reports() {
    let cases: &[(&str, usize, usize, &[&str])] = &[
        (
            "nat-http.conf",
            1,
            3,
            &[
                "line 3: `global_defs` not carried: only virtual_server and virtual_server_group are imported (the directors' VIP failover is the agents' own)",
                "line 10: `vrrp_instance` not carried: only virtual_server and virtual_server_group are imported (the directors' VIP failover is the agents' own)",
                "line 36: `delay_before_retry` not carried: a failed check is retried at the next interval",
                "line 48: `delay_before_retry` not carried: a failed check is retried at the next interval",
                "line 60: `delay_before_retry` not carried: a failed check is retried at the next interval",
            ],
        ),
        (
            "dr-sorry.conf",
            1,
            2,
            &[
                "line 12: `hysteresis` not carried: the quorum has no hysteresis: the sorry server takes over below quorum and leaves at quorum",
                "line 21: `delay_before_retry` not carried: a failed check is retried at the next interval",
                "line 31: `delay_before_retry` not carried: a failed check is retried at the next interval",
            ],
        ),
        (
            "groups.conf",
            6,
            12,
            &["line 10: `protocol` is ignored for a fwmark service (keepalived ignores it too)"],
        ),
        ("tun-udp.conf", 2, 4, &[]),
        (
            "ipv6.conf",
            2,
            3,
            &["line 43: `MISC_CHECK` not carried: health checks are TCP, HTTP, HTTPS or DNS"],
        ),
        (
            "thresholds.conf",
            1,
            2,
            &[
                "line 3: `include` not followed: import each included file on its own",
                "line 10: `alpha` not carried: realservers start as healthy until their checks say otherwise",
                "line 11: `omega` not carried: there are no quorum scripts to run at shutdown",
            ],
        ),
    ];
    for (file, vs, rs, want) in cases {
        let (m, notes) = import(Format::Keepalived, &format!("keepalived/{file}"));
        assert_eq!(counts(&m), (*vs, *rs), "{file}");
        assert_eq!(notes, *want, "{file}");
    }
}

#[test]
fn keepalived_semantics_are_carried() {
    let (m, _) = import(Format::Keepalived, "keepalived/dr-sorry.conf");
    let Manifest::VirtualService(vs) = &m[0] else {
        panic!("first object is not a VirtualService")
    };
    let s = &vs.spec;
    assert_eq!(s.forwarding, lvs_api::ForwardingMethod::Dr);
    assert_eq!(s.persistence.as_ref().unwrap().prefix_length, Some(24));
    assert_eq!(s.quorum, Some(2));
    let sorry = s.sorry_server.as_ref().unwrap();
    assert_eq!((sorry.address.as_str(), sorry.port), ("10.0.1.13", None));
    let h = s.health_check.as_ref().unwrap();
    assert_eq!(h.r#type, Some(lvs_api::HealthCheckType::Tcp));
    assert_eq!(
        (
            h.port,
            h.interval_seconds,
            h.timeout_seconds,
            h.fall,
            h.rise
        ),
        (Some(80), Some(10), Some(3), Some(3), Some(1))
    );
    assert_eq!(h.on_failure, Some(lvs_api::HealthAction::Inhibit));

    // Without inhibit_on_failure keepalived removes a failed realserver.
    let (m, _) = import(Format::Keepalived, "keepalived/nat-http.conf");
    let Manifest::VirtualService(vs) = &m[0] else {
        panic!("first object is not a VirtualService")
    };
    let h = vs.spec.health_check.as_ref().unwrap();
    assert_eq!(h.on_failure, Some(lvs_api::HealthAction::Remove));
    assert_eq!(h.path.as_deref(), Some("/"));
    assert_eq!(h.expected_status, ["200"]);
    assert_eq!(h.fall, Some(4));

    // Per-realserver tunnels and methods.
    let (m, _) = import(Format::Keepalived, "keepalived/tun-udp.conf");
    let rs: Vec<_> = m
        .iter()
        .filter_map(|o| match o {
            Manifest::RealServer(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rs[3].spec.forwarding, Some(lvs_api::ForwardingMethod::Tun));
    assert_eq!(rs[3].spec.tunnel, None);
    let Manifest::VirtualService(udp) = &m[0] else {
        panic!("first object is not a VirtualService")
    };
    let t = udp.spec.tunnel.as_ref().unwrap();
    assert_eq!(
        (t.type_, t.port, t.checksum.as_ref().map(|c| c.enabled)),
        (lvs_api::TunnelType::Gue, Some(6080), Some(true))
    );
    assert_eq!(
        udp.spec.scheduler_flags,
        [
            lvs_api::SchedulerFlag::ShPort,
            lvs_api::SchedulerFlag::ShFallback,
            lvs_api::SchedulerFlag::OnePacket
        ]
    );
}

#[test]
fn ipvsadm_lossy_rules_are_reported_line_by_line() {
    let (m, notes) = import(Format::Ipvsadm, "lossy/hand-written.rules");
    assert_eq!(counts(&m), (3, 5));
    assert_eq!(
        notes,
        [
            "line 2: `-C` clears the rules above it; they are left out",
            "line 3: `--set` not carried: connection timeouts are node settings (LvsNodeProfile spec.ipvsTimeouts)",
            "line 4: a service on port 0 (every port, with -p) cannot be expressed: a VirtualService has one port; use a fwmark service; the service and its realservers are left out",
            "line 6: option `--pe sip` not carried: persistence engines are not supported",
            "line 8: option `-M 255.255.255.0` has no effect without `-p`; not carried",
            "line 8: option `-o` (one-packet scheduling) works only with UDP or fwmark services; not carried",
            "line 8: scheduler flag `flag-1` has no meaning for scheduler rr (only sh-* with sh, mh-* with mh); not carried",
            "line 9: port 8080 differs from the service port 80, but only NAT maps ports (DR keeps the packet's port); imported without a port",
            "line 10: the tunnel settings cannot be expressed (spec.tunnel: spec.tunnel.checksum.remote is only allowed with tunnel type gue (the kernel ignores it for gre)); gre without checksum options is used",
            "line 11: lower threshold 50 needs an upper threshold above it; not carried (the kernel then resumes below three quarters of the upper one)",
            "line 11: weight 70000 is above 65535, the most spec.weight takes; imported as 65535",
            "line 12: option `-M` value `255.0.255.0` is not a contiguous IPv4 netmask; persistence is per client address",
        ]
    );
}

#[test]
fn keepalived_lossy_config_is_reported_line_by_line() {
    let (m, notes) = import(Format::Keepalived, "lossy/everything-else.conf");
    assert_eq!(counts(&m), (2, 3));
    assert_eq!(
        notes,
        [
            "line 2: `vrrp_sync_group` not carried: only virtual_server and virtual_server_group are imported (the directors' VIP failover is the agents' own)",
            "line 10: option `lb_kind` value `FOO` unknown; expected NAT, DR or TUN",
            "line 12: `sorry_server_inhibit` not carried: the sorry server is added only while needed, not kept at weight 0",
            "line 13: `ha_suspend` not carried: checks run on every director, active or not",
            "line 15: connect_timeout 5 is not below delay_loop 3; the check's timeout is 2 s (it must end before the next check)",
            "line 20: `digest` not carried: response digests are not checked; the status code is",
            "line 22: only the first `url` of a check is carried (a check GETs one path)",
            "line 28: this realserver's health check differs from the first realserver's (line 15); a service has one check, the first is used for all",
            "line 33: `notify_down` not carried: no notification scripts (watch the VirtualService's status and Events instead)",
            "line 36: virtual_server sets no `protocol`; keepalived programs UDP then, and so does the import",
            "line 37: option `lb_algo` value `roundrobin` unknown; expected rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos; wlc used",
            "line 39: port 5353 differs from the service port 53, but only NAT maps ports (DR keeps the packet's port); imported without a port",
            "line 41: DNS query type `A` not carried: DNS checks query SOA",
            "line 44: keyword `frobnicate` unknown here; not carried",
            "line 47: virtual_server has no real_server; keepalived ignores it, and so does the import",
        ]
    );
}

#[test]
fn malformed_ipvsadm_names_the_line() {
    for (text, line, msg) in [
        (
            "-A -t 203.0.113.1:80 -s rr\n-a -t 203.0.113.1:80 -r 10.0.0.1:80 -g -w heavy\n",
            2,
            "line 2: option `-w` value `heavy` is not a number from 0 to 2147483647",
        ),
        (
            "-A -t 203.0.113.1:80 -s rr\n\n# next\n-a -t 203.0.113.1:80 -r 10.0.0.1:80 --frob\n",
            4,
            "line 4: unknown option `--frob`",
        ),
        (
            "-A -t 203.0.113.1:80\n-A -t 203.0.113.1:80\n",
            2,
            "line 2: the service is already defined above",
        ),
        (
            "-A -t 203.0.113.1:99999 -s rr\n",
            1,
            "line 1: option `-t` value `203.0.113.1:99999` is not a numeric address",
        ),
        (
            "-a -t 203.0.113.1:80 -r 10.0.0.1\n",
            1,
            "line 1: the realserver's service is not defined above",
        ),
        ("-A -s rr\n", 1, "line 1: the rule names no service"),
        (
            "-A -t 203.0.113.1:80 -s rr\n-a -t 203.0.113.1:80 -r 10.0.0.1 -i --tun-type vxlan\n",
            2,
            "line 2: option `--tun-type` value `vxlan` is not ipip, gue or gre",
        ),
    ] {
        let e = parse(Format::Ipvsadm, text).unwrap_err();
        assert_eq!(e.line, line, "{text}");
        assert!(e.to_string().starts_with(msg), "{e}");
    }
}

#[test]
fn malformed_keepalived_names_the_line() {
    for (text, line, msg) in [
        (
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    weight 1\n  }\n",
            1,
            "line 1: the block of `virtual_server` is never closed",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n}\n}\n",
            3,
            "line 3: `}` closes no block",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 10.0.0.300 80 {\n  }\n}\n",
            3,
            "line 3: option `real_server` value `10.0.0.300` is not an IPv4 or IPv6 address",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    weight -1\n  }\n}\n",
            4,
            "line 4: option `weight` value `-1` is not a number from 0",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  lvs_method TUN type gue csum\n  real_server 10.0.0.1 80 {\n  }\n}\n",
            3,
            "line 3: a gue tunnel needs `port N`, and only a gue tunnel takes one",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    lvs_method DR type gre\n  }\n}\n",
            4,
            "line 4: option `lvs_method` value `type` is not the end of the line: only TUN takes tunnel options, not DR",
        ),
        (
            "virtual_server group nope {\n  real_server 10.0.0.1 80 {\n  }\n}\n",
            1,
            "line 1: virtual_server group `nope`: no virtual_server_group of that name",
        ),
        (
            "virtual_server_group g {\n  192.0.2.9-3 80\n}\n",
            2,
            "line 2: option `virtual_server_group` value `192.0.2.9-3` is not a range",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n      connect_port 0\n    }\n  }\n}\n",
            5,
            "line 5: option `connect_port` value `0` is not a number from 1 to 65535",
        ),
    ] {
        let e = parse(Format::Keepalived, text).unwrap_err();
        assert_eq!(e.line, line, "{text}");
        assert!(e.to_string().starts_with(msg), "{e}");
    }
}

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Words that steer the parsers into their less common paths.
const WORDS: &[&str] = &[
    "{",
    "}",
    "#",
    "!",
    "\"",
    "-A",
    "-a",
    "-E",
    "-e",
    "-D",
    "-d",
    "-C",
    "-t",
    "-u",
    "-f",
    "-6",
    "-p",
    "-M",
    "-b",
    "-o",
    "-r",
    "-g",
    "-i",
    "-m",
    "-w",
    "-x",
    "-y",
    "--tun-type",
    "gue",
    "--tun-port",
    "--tun-csum",
    "0",
    "65536",
    "-1",
    "4294967296",
    "[::1]:80",
    "::",
    "1.2.3.4-9",
    "2001:db8::1-ffff",
    "fwmark",
    "group",
    "virtual_server",
    "virtual_server_group",
    "real_server",
    "url",
    "status_code",
    "599-100",
    "TCP_CHECK",
    "HTTP_GET",
    "persistence_timeout",
    "persistence_granularity",
    "255.0.0.255",
    "lb_kind",
    "TUN",
    "tun_type",
    "gre",
    "tun_flags",
    "csum",
    "sorry_server",
    "quorum",
    "delay_loop",
    "0.0001",
    "1e308",
    "NaN",
    "ops",
    "sh-port",
    "\u{00e9}",
    "\u{0}",
];

/// Mutates `text`: replaced, inserted, deleted and duplicated words and lines.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    for _ in 0..1 + rng.below(4) {
        if lines.is_empty() {
            lines.push(Vec::new());
        }
        let li = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(li);
            }
            1 => {
                let l = lines[li].clone();
                lines.insert(rng.below(lines.len() + 1), l);
            }
            2 | 3 => {
                let w = &mut lines[li];
                let wi = rng.below(w.len() + 1);
                w.insert(wi, WORDS[rng.below(WORDS.len())].to_string());
            }
            4 if !lines[li].is_empty() => {
                let w = &mut lines[li];
                let wi = rng.below(w.len());
                w[wi] = WORDS[rng.below(WORDS.len())].to_string();
            }
            5 if !lines[li].is_empty() => {
                let w = &mut lines[li];
                let wi = rng.below(w.len());
                w.remove(wi);
            }
            _ => {
                let w = &mut lines[li];
                if let Some(word) = w.first_mut()
                    && !word.is_empty()
                {
                    let cut = rng.below(word.len());
                    if word.is_char_boundary(cut) {
                        word.truncate(cut);
                    }
                }
            }
        }
    }
    lines
        .iter()
        .map(|l| l.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Thousands of mutated fixtures: no panic; every error names a line of
/// the input; whatever imports is accepted by the manifest reader.
fn mutations(format: Format, sub: &[&str], seed: u64) {
    let mut inputs = Vec::new();
    for s in sub {
        for e in std::fs::read_dir(dir().join(s)).unwrap() {
            let p = e.unwrap().path();
            let ext = p.extension().and_then(|e| e.to_str());
            let wanted = match format {
                Format::Ipvsadm => ext == Some("rules"),
                Format::Keepalived => ext == Some("conf"),
            };
            if wanted {
                inputs.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty());
    let mut rng = Rng(seed);
    let (mut ok, mut err) = (0, 0);
    for i in 0..3000 {
        let base = &inputs[i % inputs.len()];
        let text = mutate(&mut rng, base);
        if fuzzing::check(format, &text) {
            ok += 1;
        } else {
            err += 1;
        }
    }
    // Both outcomes must be exercised, or the generator proves nothing.
    assert!(ok > 100 && err > 100, "ok {ok}, errors {err}");
}

#[test]
fn ipvsadm_parser_survives_mutated_fixtures() {
    mutations(
        Format::Ipvsadm,
        &["ipvsadm", "lossy"],
        0x1b5a_dd5e_0000_0001,
    );
}

#[test]
fn keepalived_parser_survives_mutated_fixtures() {
    mutations(
        Format::Keepalived,
        &["keepalived", "lossy"],
        0x4ee9_a11e_0000_0002,
    );
}
