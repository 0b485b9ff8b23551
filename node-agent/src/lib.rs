//! The lvs-operator node agent.
//!
//! A [`source`] produces snapshots of VirtualServices, RealServers and
//! Nodes; the [`agent`] loop plans this node's share with `lvs_planner` and
//! the [`reconcile::Reconciler`] makes the kernel match it through the
//! [`dataplane::Dataplane`] trait, touching only what its [`ledger`] says it
//! created.
#![forbid(unsafe_code)]

pub mod dataplane;
pub mod desired;
pub mod ledger;
pub mod model;
pub mod reconcile;
pub mod report;
