//! `kubectl lvs`: the lvs-operator kubectl plugin.
//!
//! Its commands live in modules of their own: `import` (pure parsers and
//! builders) and `live` (`get`, `table`, `diff`, `top`: pure views of what
//! [`cluster`], the only I/O, reads), with the command line in [`cli`] and
//! `main.rs` a few lines long.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod import;
pub mod live;
