//! IPVS (Linux Virtual Server) over generic netlink.
//!
//! Three layers, usable separately:
//! - [`codec`]: the IPVS generic-netlink family as values, byte-exact in both
//!   directions, on top of `netlink-packet-core`/`netlink-packet-generic`;
//! - [`types`]: typed services and destinations with identity (`*Key`) kept
//!   apart from configuration and from observed counters, so a desired/actual
//!   diff compares keys and configs and never stats;
//! - [`IpvsClient`]: resolves the family at run time, pipelines write
//!   operations with per-operation error mapping, and dumps the table, over a
//!   [`Transport`] that tests replace with [`ScriptedTransport`].
//!
//! The client is blocking on purpose (see [`client`]).
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod constants;
pub mod error;
mod fast;
#[doc(hidden)]
pub mod fuzzing;
pub mod ops;
pub mod replies;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod transport;
pub mod types;

pub use client::{DEFAULT_BATCH_SIZE, IpvsClient, RequestCounters, RequestCounts};
pub use error::{Error, OpError, Result};
pub use ops::Op;
pub use transport::{NetlinkTransport, ScriptedTransport, SentLog, Transport};
pub use types::{
    DaemonState, DestConfig, DestEntry, DestKey, DestStats, Destination, Family, FwdMethod,
    IpvsInfo, Protocol, Service, ServiceConfig, ServiceEntry, ServiceFlags, ServiceKey, Stats,
    SyncDaemon, Timeouts, TunnelFlags, TunnelType,
};
