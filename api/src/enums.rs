//! String enums of the API.
//!
//! They are written by hand instead of derived so that an unknown value is
//! reported the way the API server reports it (`Unsupported value: "x":
//! supported values: ...`). The fixture table asserts that both the schema and
//! the Rust validator produce that phrase.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Error for a string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unsupported value: {value:?}: supported values: {supported}")]
pub struct UnsupportedValue {
    pub value: String,
    pub supported: String,
}

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in manifests.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            fn supported() -> String {
                [$(concat!("\"", $text, "\"")),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnsupportedValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnsupportedValue { value: s.to_string(), supported: Self::supported() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "enum": [$($text),+],
                })
            }
        }
    };
}

string_enum! {
    /// Transport protocol of a service.
    pub enum Protocol {
        Tcp = "TCP",
        Udp = "UDP",
        Sctp = "SCTP",
    }
}

string_enum! {
    /// IPVS scheduler. See ipvsadm(8) for the algorithms.
    #[derive(Default)]
    pub enum Scheduler {
        /// Round robin.
        Rr = "rr",
        /// Weighted round robin.
        Wrr = "wrr",
        /// Least connections.
        Lc = "lc",
        /// Weighted least connections (the default).
        #[default]
        Wlc = "wlc",
        /// Locality-based least connections.
        Lblc = "lblc",
        /// Locality-based least connections with replication.
        Lblcr = "lblcr",
        /// Destination hashing.
        Dh = "dh",
        /// Source hashing.
        Sh = "sh",
        /// Shortest expected delay.
        Sed = "sed",
        /// Never queue.
        Nq = "nq",
        /// Maglev hashing.
        Mh = "mh",
        /// Weighted failover.
        Fo = "fo",
        /// Weighted overflow.
        Ovf = "ovf",
        /// Weighted random twos choice (kernel 6.5 and later).
        Twos = "twos",
    }
}

string_enum! {
    /// Scheduler flags. The sh- and mh- flags are valid only with their
    /// scheduler; one-packet (ipvsadm `-o`) with any scheduler, for UDP.
    pub enum SchedulerFlag {
        ShFallback = "sh-fallback",
        ShPort = "sh-port",
        MhFallback = "mh-fallback",
        MhPort = "mh-port",
        /// Schedule every UDP datagram on its own, keeping no connection entry.
        OnePacket = "one-packet",
    }
}

impl SchedulerFlag {
    /// The scheduler the flag belongs to; `None` when it works with any.
    pub fn scheduler(self) -> Option<Scheduler> {
        match self {
            SchedulerFlag::ShFallback | SchedulerFlag::ShPort => Some(Scheduler::Sh),
            SchedulerFlag::MhFallback | SchedulerFlag::MhPort => Some(Scheduler::Mh),
            SchedulerFlag::OnePacket => None,
        }
    }
}

string_enum! {
    /// LVS forwarding method.
    #[derive(Default)]
    pub enum ForwardingMethod {
        /// Masquerading: the director rewrites the destination (and may map the port);
        /// replies must route back through the director.
        #[default]
        Nat = "NAT",
        /// Direct routing: the director rewrites the MAC only; realservers hold the VIP
        /// on `lo` and reply straight to the client. Realservers share an L2 segment
        /// with the director.
        Dr = "DR",
        /// IP tunnelling: the director encapsulates; realservers decapsulate on a
        /// tunnel device holding the VIP and reply straight to the client.
        Tun = "TUN",
    }
}

string_enum! {
    /// Encapsulation used with TUN forwarding.
    #[derive(Default)]
    pub enum TunnelType {
        /// IP-in-IP (every kernel with IPVS).
        #[default]
        Ipip = "ipip",
        /// Generic UDP encapsulation (kernel 5.3 and later).
        Gue = "gue",
        /// GRE (kernel 5.3 and later).
        Gre = "gre",
    }
}

string_enum! {
    /// The kind of active health check.
    pub enum HealthCheckType {
        /// A TCP connect to the check port.
        Tcp = "TCP",
        /// An HTTP GET of the path; by default a 2xx or 3xx answer is healthy.
        Http = "HTTP",
        /// HTTP over TLS; the certificate is verified only with
        /// verifyCertificate.
        Https = "HTTPS",
        /// A DNS query over UDP; healthy when the answer has the expected
        /// rcode.
        Dns = "DNS",
        /// No check: every realserver counts as healthy.
        None = "None",
    }
}

string_enum! {
    /// What a failed health check does to the realserver's destination.
    pub enum HealthAction {
        /// Weight 0: new connections avoid it, established ones continue.
        Inhibit = "Inhibit",
        /// The destination is removed until the check passes again (the
        /// default for UDP, whose flows would otherwise stick to it).
        Remove = "Remove",
    }
}

string_enum! {
    /// Whether a RealServer takes traffic.
    #[derive(Default)]
    pub enum RealServerState {
        /// A destination with its weight (the default).
        #[default]
        Active = "Active",
        /// Leaving: weight 0 on every director until its connections end or
        /// the VirtualService's drain.timeoutSeconds passes, then removed.
        Draining = "Draining",
        /// Kept as an object, but its destination has weight 0: no new
        /// connections, established ones continue.
        Inactive = "Inactive",
    }
}

string_enum! {
    /// The DNS answer code a DNS health check expects.
    pub enum DnsRcode {
        NoError = "NOERROR",
        NxDomain = "NXDOMAIN",
        ServFail = "SERVFAIL",
        Refused = "REFUSED",
    }
}

string_enum! {
    /// Address family of a firewall-mark service.
    pub enum Family {
        IPv4 = "IPv4",
        IPv6 = "IPv6",
    }
}

string_enum! {
    /// Label selector operator.
    pub enum SelectorOperator {
        In = "In",
        NotIn = "NotIn",
        Exists = "Exists",
        DoesNotExist = "DoesNotExist",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_value_names_the_value_and_the_alternatives() {
        let err = "roundrobin".parse::<Scheduler>().unwrap_err().to_string();
        assert!(
            err.starts_with("Unsupported value: \"roundrobin\": supported values: \"rr\", \"wrr\""),
            "{err}"
        );
        assert!(err.ends_with("\"twos\""), "{err}");
    }

    #[test]
    fn every_value_round_trips_through_serde() {
        for s in Scheduler::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<Scheduler>(&json).unwrap(), *s);
        }
        assert_eq!(
            serde_json::from_str::<ForwardingMethod>("\"DR\"").unwrap(),
            ForwardingMethod::Dr
        );
        assert!(serde_json::from_str::<ForwardingMethod>("\"dr\"").is_err());
    }
}
