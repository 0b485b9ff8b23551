//! The command line: `kubectl lvs <command>`. kubectl finds the plugin as
//! `kubectl-lvs` on the PATH and passes the words after `lvs`.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::import::build::{self, DEFAULT_DIRECTORS, Options};
use crate::import::{Format, parse};

#[derive(Debug, Parser)]
#[command(name = "kubectl-lvs", version, about = "lvs-operator's kubectl plugin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write VirtualService and RealServer YAML from an existing director's
    /// configuration (stdout), with a report of what was not carried over
    /// (stderr).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The input format.
    format: Format,
    /// The file to read; `-` reads stdin.
    file: String,
    /// The namespace of the objects.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The nodes that act as directors: labels as key=value[,key=value].
    #[arg(long, default_value = DEFAULT_DIRECTORS)]
    directors: String,
    /// The interface the directors hold the VIPs on (default: the one with
    /// the node's InternalIP).
    #[arg(long)]
    interface: Option<String>,
    /// The start of every object's name.
    #[arg(long, default_value = "imported")]
    name_prefix: String,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn prefix_ok(p: &str) -> bool {
    let b = p.as_bytes();
    (1..=40).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    if !prefix_ok(&a.name_prefix) {
        anyhow::bail!(
            "--name-prefix {:?}: expected 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit",
            a.name_prefix
        );
    }
    let directors = build::parse_selector(&a.directors).map_err(|e| {
        anyhow::anyhow!(
            "--directors {:?}: {e}; expected key=value[,key=value]",
            a.directors
        )
    })?;
    // Bytes, decoded lossily: a stray non-UTF-8 byte in a comment must not
    // stop an import.
    let mut bytes = Vec::new();
    if a.file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file))?;
    }
    let text = String::from_utf8_lossy(&bytes);
    let draft = match parse(a.format, &text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", if a.file == "-" { "<stdin>" } else { &a.file });
            return Ok(ExitCode::FAILURE);
        }
    };
    let opts = Options {
        namespace: a.namespace,
        directors,
        interface: a.interface,
        prefix: a.name_prefix,
    };
    let out = build::build(draft, &opts);
    let yaml = out.to_yaml().context("writing YAML")?;
    std::io::stdout()
        .write_all(yaml.as_bytes())
        .context("writing stdout")?;
    let mut err = std::io::stderr().lock();
    for n in &out.notes {
        writeln!(err, "{n}")?;
    }
    writeln!(
        err,
        "imported {}, {}; {} not carried over",
        plural(out.services.len(), "VirtualService", "VirtualServices"),
        plural(out.real_server_count(), "RealServer", "RealServers"),
        plural(out.notes.len(), "line or option", "lines or options"),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the plugin; the exit status is 0 on success, 1 on malformed input
/// or an I/O error, 2 on a usage error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Import(a) => import(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubectl-lvs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
