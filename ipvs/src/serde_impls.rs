//! Serialisation of the identity types, behind the `serde` feature.
//!
//! The shape is fixed because files written with it outlive a binary (the
//! node agent's ledger): a tuple service is
//! `{"type":"tuple","addr":"10.0.0.1","protocol":6,"port":80}`, a fwmark
//! service `{"type":"fwmark","mark":1,"ipv6":false}`, a destination
//! `{"addr":"10.1.0.1","port":8080}`.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::{DestKey, Family, Protocol, ServiceKey};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
enum ServiceKeyRepr {
    Tuple {
        addr: IpAddr,
        protocol: u16,
        port: u16,
    },
    Fwmark {
        mark: u32,
        ipv6: bool,
    },
}

impl From<&ServiceKey> for ServiceKeyRepr {
    fn from(k: &ServiceKey) -> Self {
        match *k {
            ServiceKey::Tuple {
                addr,
                protocol,
                port,
            } => ServiceKeyRepr::Tuple {
                addr,
                protocol: protocol.0,
                port,
            },
            ServiceKey::Fwmark { family, mark } => ServiceKeyRepr::Fwmark {
                mark,
                ipv6: family == Family::V6,
            },
        }
    }
}

impl From<ServiceKeyRepr> for ServiceKey {
    fn from(r: ServiceKeyRepr) -> Self {
        match r {
            ServiceKeyRepr::Tuple {
                addr,
                protocol,
                port,
            } => ServiceKey::Tuple {
                addr,
                protocol: Protocol(protocol),
                port,
            },
            ServiceKeyRepr::Fwmark { mark, ipv6 } => ServiceKey::Fwmark {
                family: if ipv6 { Family::V6 } else { Family::V4 },
                mark,
            },
        }
    }
}

impl Serialize for ServiceKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ServiceKeyRepr::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ServiceKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ServiceKeyRepr::deserialize(d).map(ServiceKey::from)
    }
}

#[derive(Serialize, Deserialize)]
struct DestKeyRepr {
    addr: IpAddr,
    port: u16,
}

impl Serialize for DestKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DestKeyRepr {
            addr: self.addr,
            port: self.port,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DestKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = DestKeyRepr::deserialize(d)?;
        Ok(DestKey {
            addr: r.addr,
            port: r.port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_json_shape_both_ways() {
        let cases = [
            (
                ServiceKey::Tuple {
                    addr: "10.0.0.1".parse().unwrap(),
                    protocol: Protocol::TCP,
                    port: 80,
                },
                r#"{"type":"tuple","addr":"10.0.0.1","protocol":6,"port":80}"#,
            ),
            (
                ServiceKey::Fwmark {
                    family: Family::V6,
                    mark: 7,
                },
                r#"{"type":"fwmark","mark":7,"ipv6":true}"#,
            ),
        ];
        for (key, json) in cases {
            assert_eq!(serde_json::to_string(&key).unwrap(), json);
            assert_eq!(serde_json::from_str::<ServiceKey>(json).unwrap(), key);
        }
        let d = DestKey {
            addr: "fd00::1".parse().unwrap(),
            port: 8080,
        };
        let json = r#"{"addr":"fd00::1","port":8080}"#;
        assert_eq!(serde_json::to_string(&d).unwrap(), json);
        assert_eq!(serde_json::from_str::<DestKey>(json).unwrap(), d);
    }
}
