//! Dump the IPVS table of the current network namespace through lvs-ipvs
//! and print it like `ipvsadm -Ln` (or `-Sn` with `--save`), so the library
//! can be checked against ipvsadm on a real kernel.
//!
//!     ipvs-dump [--save]

#[path = "common/ipvsadm.rs"]
mod ipvsadm;

use std::process::ExitCode;

use lvs_ipvs::{IpvsClient, ServiceEntry};

fn main() -> ExitCode {
    let save = std::env::args().any(|a| a == "--save" || a == "-S");
    let run = || -> Result<String, lvs_ipvs::Error> {
        let mut client = IpvsClient::connect()?;
        // Same as `dump_all`, spelled out to report what the service dump
        // alone cost: a big table spans several datagrams.
        let before = client.counters().snapshot();
        let services = client.services()?;
        let svc_cost = client.counters().snapshot() - before;
        let mut table = Vec::new();
        for (service, stats) in services {
            let destinations = client.destinations(&service.key)?;
            table.push(ServiceEntry {
                service,
                stats,
                destinations,
            });
        }
        table.sort();
        eprintln!(
            "ipvs-dump: {} services, {} destinations; service dump: {} request, {} datagrams",
            table.len(),
            table.iter().map(|e| e.destinations.len()).sum::<usize>(),
            svc_cost.requests,
            svc_cost.recvmsgs
        );
        Ok(if save {
            ipvsadm::save(&table)
        } else {
            ipvsadm::list(&client.info()?, &table)
        })
    };
    match run() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ipvs-dump: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
