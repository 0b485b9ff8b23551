//! The lvs-operator node agent.
//!
//! A [`source`] produces snapshots of VirtualServices, RealServers and
//! Nodes (a directory of manifests, or the Kubernetes API server through
//! `k8s`, which also reports each sync as the node's LvsNode status); the [`agent`] loop plans this node's share with `lvs_planner` and
//! the [`reconcile::Reconciler`] makes the kernel match it through the
//! [`dataplane::Dataplane`] trait, touching only what its [`ledger`] says it
//! created.
#![deny(unsafe_code)]

pub mod agent;
pub mod alloc;
#[cfg(target_os = "linux")]
pub mod cli;
pub mod dataplane;
pub mod desired;
pub mod dirwatch;
pub mod drain;
pub mod gating;
pub mod ha;
pub mod health;
pub mod http;
#[cfg(target_os = "linux")]
pub mod k8s;
pub mod kernel;
pub mod ledger;
pub mod live_table;
pub mod metrics;
pub mod quiet;
pub mod reconcile;
pub mod report;
pub mod source;
