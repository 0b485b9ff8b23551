//! The lvs-operator controller.
//!
//! It watches VirtualServices, RealServers, Nodes and the agents' LvsNode
//! reports, runs the planner's cluster-wide analysis, and writes each
//! VirtualService's and RealServer's status (conditions, resolved
//! directors and addresses, per-node programming state) with server-side
//! apply. It never programs IPVS itself: the node agents do, from the same
//! objects. It also serves Services of type LoadBalancer of class
//! `lvs-operator.io/ipvs` (VirtualServices on an address from the pools) and
//! mirrors the EndpointSlices of the Services that VirtualServices name in
//! `spec.backends` into RealServers.
#![forbid(unsafe_code)]

pub mod backends;
pub mod cli;
pub mod controller;
pub mod derived;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod loadbalancer;
pub mod mapping;
pub mod metrics;
pub mod pools;
pub mod run;
pub mod services;
pub mod status;
pub mod stores;

pub use error::{Error, Result};

/// Field manager of every write, and the reporting controller of Events.
pub const FIELD_MANAGER: &str = "lvs-operator";

/// Resolves once shutdown is signalled (or its sender is gone).
pub async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
