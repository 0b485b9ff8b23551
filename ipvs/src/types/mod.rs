//! Typed view of services and destinations.
//!
//! Identity (`*Key`) is kept apart from configuration (`*Config`) and from
//! what the kernel reports about traffic (`Stats`, `DestStats`), so callers
//! can diff desired against actual by key and compare only configuration.
//! Every type is `Ord` so sorted sets can be merged in one pass.

mod dest;
mod global;
mod observed;
mod service;
mod wire;

pub use dest::*;
pub use global::*;
pub use observed::*;
pub use service::*;
pub(crate) use wire::*;

#[cfg(test)]
mod tests;
