//! Director high availability: one active director per VIP, elected with
//! Leases, the others standing by with the same IPVS services.

pub mod election;
