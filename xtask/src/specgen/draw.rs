//! Drawing one spec: every field of both kinds from its schema, with the
//! edges of every range and values just outside them.

use super::*;

pub(super) struct Gen<'a> {
    pub(super) rng: Xoshiro256PlusPlus,
    pub(super) opts: &'a Options,
}

impl Gen<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())].clone()
    }

    /// Mostly in range (edges included), sometimes just outside.
    fn int(&mut self, min: i64, max: i64, p_out: f64) -> i64 {
        if self.chance(p_out) {
            return if self.chance(0.5) { min - 1 } else { max + 1 };
        }
        match self.rng.random_range(0..4) {
            0 => min,
            1 => max,
            _ => self.rng.random_range(min..=max),
        }
    }

    fn opt_int(&mut self, min: i64, max: i64, p_none: f64, p_out: f64) -> Option<i64> {
        (!self.chance(p_none)).then(|| self.int(min, max, p_out))
    }

    fn v4(&mut self) -> Ipv4Addr {
        // Mostly ordinary unicast, with the edges the kernel accepts.
        let a = match self.rng.random_range(0..10) {
            0 => Ipv4Addr::new(1, 0, 0, 0),
            1 => Ipv4Addr::new(223, 255, 255, 255),
            2 => Ipv4Addr::new(240, 0, 0, self.rng.random_range(1..=254)),
            3 => Ipv4Addr::new(255, 255, 255, 254),
            4 => Ipv4Addr::new(172, 16, self.rng.random(), self.rng.random()),
            _ => Ipv4Addr::from(self.rng.random::<u32>()),
        };
        if lab_v4(a) || !plain_v4(a) {
            return Ipv4Addr::new(100, 64, self.rng.random(), self.rng.random_range(1..=254));
        }
        a
    }

    fn v6(&mut self) -> Ipv6Addr {
        let a = match self.rng.random_range(0..8) {
            0 => "fc00::1".parse().expect("literal"),
            1 => "fec0::1".parse().expect("literal"),
            2 => "::1.2.3.4".parse().expect("literal"),
            3 => Ipv6Addr::new(0xfd00, self.rng.random(), 0, 0, 0, 0, 0, self.rng.random()),
            _ => {
                let top = u128::from(self.rng.random_range(0x2001u16..=0x3fff)) << 112;
                Ipv6Addr::from(top | (self.rng.random::<u128>() >> 16))
            }
        };
        if lab_v6(a) {
            return Ipv6Addr::new(0x2a00, 0, 0, 0, 0, 0, 0, self.rng.random_range(1..=0xffff));
        }
        a
    }

    /// Addresses every validator must refuse, of both kinds.
    fn bad_address(&mut self, vip: bool) -> String {
        let mut bad = vec![
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "239.255.255.255",
            "ff02::1",
            "0.1.2.3",
            "255.255.255.255",
            "fe80::1",
            "::ffff:192.0.2.1",
            "192.0.2.1/32",
            "not-an-ip",
            "fe80::1%eth0",
        ];
        if vip {
            bad.extend(["169.254.1.1", "169.254.255.254"]);
        }
        self.pick(&bad).to_string()
    }

    fn address(&mut self, ipv6: bool, vip: bool) -> String {
        if self.chance(0.05) {
            return self.bad_address(vip);
        }
        if !vip && !ipv6 && self.chance(0.05) {
            // Link-local IPv4 realservers are served over their link.
            return format!(
                "169.254.{}.{}",
                self.rng.random_range(1..=254),
                self.rng.random_range(1..=254)
            );
        }
        if ipv6 {
            self.v6().to_string()
        } else {
            self.v4().to_string()
        }
    }

    fn scheduler(&mut self) -> Scheduler {
        let all: Vec<Scheduler> = Scheduler::ALL
            .iter()
            .copied()
            .filter(|s| !self.opts.exclude.contains(s))
            .collect();
        self.pick(&all)
    }

    pub(super) fn vs(&mut self, name: &str) -> VirtualServiceSpec {
        let ipv6 = self.chance(0.5);
        let by_mark = self.chance(0.25);
        let scheduler = self.scheduler();
        let mut spec = VirtualServiceSpec {
            address: None,
            port: None,
            protocol: None,
            fwmark: None,
            family: None,
            fwmark_match: None,
            scheduler,
            scheduler_flags: Vec::new(),
            persistence: None,
            forwarding: self.pick(ForwardingMethod::ALL),
            tunnel: None,
            backends: None,
            source_nat: false,
            directors: self.directors(),
            real_server_selector: Some(LabelSelector {
                match_labels: [("app".to_string(), name.to_string())]
                    .into_iter()
                    .collect(),
                match_expressions: if self.chance(0.2) {
                    vec![LabelSelectorRequirement {
                        key: "app".into(),
                        operator: SelectorOperator::Exists,
                        values: Vec::new(),
                    }]
                } else {
                    Vec::new()
                },
            }),
            health_check: None,
            sorry_server: None,
            quorum: None,
            drain: None,
        };
        if by_mark {
            spec.fwmark = Some(self.int(1, u32::MAX.into(), 0.03));
            spec.family = match self.rng.random_range(0..3) {
                0 if !ipv6 => None,
                _ => Some(if ipv6 { Family::IPv6 } else { Family::IPv4 }),
            };
            if self.chance(0.03) {
                spec.port = Some(80);
            }
        } else {
            spec.address = Some(self.address(ipv6, true));
            spec.port = (!self.chance(0.02)).then(|| self.int(1, 65535, 0.03));
            spec.protocol = self.pick(&[
                None,
                Some(Protocol::Tcp),
                Some(Protocol::Udp),
                Some(Protocol::Sctp),
            ]);
            if self.chance(0.02) {
                spec.family = Some(Family::IPv4);
            }
        }
        for f in SchedulerFlag::ALL {
            let own = match f.scheduler() {
                Some(s) => s == scheduler,
                None => spec.fwmark.is_some() || spec.protocol == Some(Protocol::Udp),
            };
            if (own && self.chance(0.5)) || (!own && self.chance(0.01)) {
                spec.scheduler_flags.push(*f);
            }
        }
        if self.chance(0.5) {
            let max_prefix = if spec.is_ipv6() { 128 } else { 32 };
            spec.persistence = Some(Persistence {
                timeout_seconds: self.int(1, 2_678_400, 0.03),
                prefix_length: match self.rng.random_range(0..6) {
                    0 => None,
                    1 => Some(0),
                    2 => Some(max_prefix),
                    3 if self.chance(0.2) => Some(max_prefix + 1),
                    _ => Some(self.rng.random_range(0..=max_prefix)),
                },
            });
        }
        if (spec.forwarding == ForwardingMethod::Tun && self.chance(0.8)) || self.chance(0.02) {
            spec.tunnel = Some(self.tunnel());
        }
        // Source NAT mostly with NAT, now and then elsewhere (refused).
        spec.source_nat = self.chance(if spec.forwarding == ForwardingMethod::Nat {
            0.4
        } else {
            0.02
        });
        if self.chance(0.3) {
            let t = self.pick(&[
                None,
                Some(HealthCheckType::Tcp),
                Some(HealthCheckType::Http),
                Some(HealthCheckType::Https),
                Some(HealthCheckType::Dns),
                Some(HealthCheckType::None),
            ]);
            let http = matches!(t, Some(HealthCheckType::Http | HealthCheckType::Https));
            let https = t == Some(HealthCheckType::Https);
            let dns = t == Some(HealthCheckType::Dns);
            // Each type's own fields mostly with it, now and then elsewhere.
            let with = |this: bool, me: &mut Self| (this && me.chance(0.5)) || me.chance(0.02);
            let interval = self.opt_int(1, 3600, 0.5, 0.03);
            let timeout = if self.chance(0.5) {
                None
            } else {
                // Below the interval (default 5) but for one in fifty.
                let below = interval.unwrap_or(5).clamp(2, 3601) - 1;
                Some(if self.chance(0.02) {
                    below + 1
                } else {
                    self.int(1, below, 0.0)
                })
            };
            spec.health_check = Some(Box::new(HealthCheck {
                r#type: t,
                path: with(http, self).then(|| {
                    if self.chance(0.03) {
                        "healthz".into()
                    } else {
                        "/healthz".into()
                    }
                }),
                port: self.opt_int(1, 65535, 0.5, 0.03),
                interval_seconds: interval,
                timeout_seconds: timeout,
                rise: self.opt_int(1, 100, 0.5, 0.03),
                fall: self.opt_int(1, 100, 0.5, 0.03),
                on_failure: self.chance(0.3).then(|| self.pick(HealthAction::ALL)),
                host: with(http, self).then(|| "www.example.com".into()),
                expected_status: if with(http, self) {
                    self.pick(&[
                        vec!["200".to_string()],
                        vec!["200-299".into(), "301".into()],
                        vec!["399-200".into()],
                        vec!["2xx".into()],
                    ])
                } else {
                    Vec::new()
                },
                body_contains: with(http, self).then(|| "ok".into()),
                verify_certificate: with(https, self).then(|| self.chance(0.5)),
                dns_name: with(dns, self).then(|| "example.com.".into()),
                expected_rcode: with(dns, self).then(|| self.pick(DnsRcode::ALL)),
            }));
        }
        if self.chance(0.1) {
            let v6 = spec.is_ipv6() != self.chance(0.03);
            spec.sorry_server = Some(Box::new(SorryServer {
                address: self.address(v6, false),
                port: self.opt_int(1, 65535, 0.5, 0.03),
            }));
            spec.quorum = self.opt_int(1, 1000, 0.5, 0.03);
        }
        if self.chance(0.2) {
            spec.drain = Some(Drain {
                timeout_seconds: self.opt_int(0, 86400, 0.2, 0.03),
            });
        }
        spec
    }

    /// Selectors that pick the lab's director dir1 (e2e/kernel/guest/agent.sh,
    /// manifest_lab_nodes), one in fifty malformed.
    fn directors(&mut self) -> Directors {
        let req = |key: &str, operator, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let labels = |k: &str, v: &str| -> LabelSelector {
            LabelSelector {
                match_labels: [(k.to_string(), v.to_string())].into_iter().collect(),
                match_expressions: Vec::new(),
            }
        };
        let exprs = |e: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Default::default(),
            match_expressions: e,
        };
        let node_selector = match self.rng.random_range(0..7) {
            0 => LabelSelector::default(),
            1 => labels("lab.lvs-operator.io/node", "dir1"),
            2 => exprs(vec![req(
                "lab.lvs-operator.io/role",
                SelectorOperator::In,
                &["director"],
            )]),
            3 => exprs(vec![req(
                "lab.lvs-operator.io/role",
                SelectorOperator::NotIn,
                &["realserver"],
            )]),
            4 => exprs(vec![req(
                "lvs.lvs-operator.io/director",
                SelectorOperator::Exists,
                &[],
            )]),
            5 if self.chance(0.1) => exprs(vec![req(
                "lab.lvs-operator.io/role",
                SelectorOperator::In,
                &[],
            )]),
            _ => labels("lvs.lvs-operator.io/director", "true"),
        };
        let interface = match self.rng.random_range(0..50) {
            0 => Some(
                self.pick(&[".", "..", "eth/0", "eth:0", "an-interface-name"])
                    .to_string(),
            ),
            1..=15 => Some("eth0".to_string()),
            _ => None,
        };
        Directors {
            node_selector,
            interface,
        }
    }

    /// A tunnel, now and then breaking one of its rules.
    fn tunnel(&mut self) -> Tunnel {
        let type_ = self.pick(TunnelType::ALL);
        let port_ok = type_ == TunnelType::Gue;
        Tunnel {
            type_,
            port: if port_ok != self.chance(0.03) {
                Some(self.int(1, 65535, 0.03))
            } else {
                None
            },
            checksum: ((type_ != TunnelType::Ipip && self.chance(0.6)) || self.chance(0.02)).then(
                || TunnelChecksum {
                    enabled: self.chance(0.5),
                    remote: self.chance(if type_ == TunnelType::Gue { 0.5 } else { 0.1 }),
                },
            ),
        }
    }

    pub(super) fn rs(&mut self, vs: &VirtualServiceSpec) -> RealServerSpec {
        // One in twenty of the other family: validate_pair refuses it.
        let ipv6 = vs.is_ipv6() != self.chance(0.05);
        let (address, node_name) = match self.rng.random_range(0..100) {
            0 => (Some(self.address(ipv6, false)), Some("rs1".to_string())),
            1 => (None, None),
            2 => (
                None,
                Some(self.pick(&["Node_1", "rs1.", "-rs1", ""]).to_string()),
            ),
            3..=22 => {
                let names: Vec<String> = self.opts.nodes.iter().map(|n| n.name.clone()).collect();
                (None, Some(self.pick(&names)))
            }
            _ => (Some(self.address(ipv6, false)), None),
        };
        let upper = match self.rng.random_range(0..4) {
            0 | 1 => None,
            _ => Some(self.int(0, i32::MAX.into(), 0.03)),
        };
        let lower = match (self.rng.random_range(0..5), upper) {
            (0, _) => Some(0),
            (1, Some(u)) if u > 1 => Some(self.rng.random_range(1..u)),
            (2, _) if self.chance(0.15) => Some(self.rng.random_range(1..=1000)),
            (3, Some(u)) if self.chance(0.15) => Some(u),
            _ => None,
        };
        let forwarding = self.pick(&[
            None,
            None,
            Some(ForwardingMethod::Nat),
            Some(ForwardingMethod::Dr),
            Some(ForwardingMethod::Tun),
        ]);
        // A tunnel of its own mostly where the realserver forwards with TUN,
        // now and then elsewhere (refused).
        let tun = forwarding.unwrap_or(vs.forwarding) == ForwardingMethod::Tun;
        let tunnel = self
            .chance(if tun { 0.3 } else { 0.02 })
            .then(|| self.tunnel());
        RealServerSpec {
            address,
            node_name,
            // Mostly the service's (port mapping needs NAT; a fwmark
            // service's DR/TUN destinations have none).
            port: match self.rng.random_range(0..8) {
                0 | 1 => None,
                2..=5 => vs.port,
                _ => Some(self.int(1, 65535, 0.03)),
            },
            weight: self.int(0, 65535, 0.03),
            forwarding,
            tunnel,
            upper_threshold: upper,
            lower_threshold: lower,
            state: self.pick(&[
                None,
                None,
                None,
                Some(RealServerState::Active),
                Some(RealServerState::Draining),
                Some(RealServerState::Inactive),
            ]),
        }
    }
}

/// Addresses in the kernel lab's own networks (e2e/kernel/topology.sh):
/// a spec there would collide with a node's address, which says nothing
/// about the rules.
fn lab_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    (o[0] == 10 && o[1] == 0)
        || (o[0], o[1], o[2]) == (198, 51, 100)
        || (o[0], o[1], o[2]) == (203, 0, 113)
}

fn lab_v6(a: Ipv6Addr) -> bool {
    a.segments()[0] == 0x2001 && a.segments()[1] == 0x0db8
}

/// Unicast addresses the validator admits (the others are drawn on purpose
/// by `bad_address`).
fn plain_v4(a: Ipv4Addr) -> bool {
    !(a.is_loopback()
        || a.is_multicast()
        || a.is_broadcast()
        || a.octets()[0] == 0
        || a.is_link_local())
}
