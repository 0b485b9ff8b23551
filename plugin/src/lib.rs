//! `kubectl lvs`: the lvs-operator kubectl plugin.
//!
//! Its commands live in modules of their own (today `import`), with the
//! command line in [`cli`] and `main.rs` a few lines long.
#![forbid(unsafe_code)]

pub mod cli;
pub mod import;
