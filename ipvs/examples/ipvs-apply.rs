//! Apply ipvsadm-style rules (one `-A/-E/-D/-a/-e/-d ...` per line, as
//! `ipvsadm -Sn` prints them) through lvs-ipvs in pipelined batches, and
//! report each rule's outcome and the netlink cost. Used in the kernel lab
//! to create rules with the library and compare them with `ipvsadm -Sn`.
//!
//!     ipvs-apply [--batch N] [FILE]     (stdin without FILE)
//!
//! Exit status 0 if every rule succeeded, 1 if some failed, 2 on errors.

#[path = "common/ipvsadm.rs"]
mod ipvsadm;

use std::io::Read;
use std::process::ExitCode;

use lvs_ipvs::IpvsClient;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut batch = lvs_ipvs::DEFAULT_BATCH_SIZE;
    let mut file = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--batch" {
            i += 1;
            batch = match args.get(i).and_then(|v| v.parse().ok()) {
                Some(b) => b,
                None => {
                    eprintln!("ipvs-apply: --batch needs a number");
                    return ExitCode::from(2);
                }
            };
        } else {
            file = Some(args[i].clone());
        }
        i += 1;
    }
    let mut text = String::new();
    let read = match &file {
        Some(f) => std::fs::read_to_string(f).map(|t| text = t),
        None => std::io::stdin().read_to_string(&mut text).map(drop),
    };
    if let Err(e) = read {
        eprintln!("ipvs-apply: cannot read rules: {e}");
        return ExitCode::from(2);
    }
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match ipvsadm::parse_rule(line) {
            Ok(op) => ops.push(op),
            Err(e) => {
                eprintln!("ipvs-apply: line {}: {e}: {line}", n + 1);
                return ExitCode::from(2);
            }
        }
    }
    let mut client = match IpvsClient::connect() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipvs-apply: {e}");
            return ExitCode::from(2);
        }
    };
    client.set_batch_size(batch);
    let before = client.counters().snapshot();
    let start = std::time::Instant::now();
    let results = match client.apply(&ops) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipvs-apply: {e}");
            return ExitCode::from(2);
        }
    };
    let elapsed = start.elapsed();
    let cost = client.counters().snapshot() - before;
    let mut failed = 0;
    for (op, r) in ops.iter().zip(&results) {
        match r {
            Ok(()) => println!("ok {op}"),
            Err(e) => {
                failed += 1;
                println!("FAILED {op}: errno {} ({})", e.errno, e.metric_label());
            }
        }
    }
    eprintln!(
        "ipvs-apply: {} ops, {failed} failed, batch {batch}: {} requests in {} sendmsg calls, {} datagrams received, {:.1} ms",
        ops.len(),
        cost.requests,
        cost.sendmsgs,
        cost.recvmsgs,
        elapsed.as_secs_f64() * 1000.0
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
