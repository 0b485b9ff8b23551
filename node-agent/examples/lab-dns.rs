//! A tiny UDP DNS server and client for the kernel lab's UDP scenarios
//! (health-udp-dns, agent-udp, agent-ops-udp; busybox has neither).
//!
//! ```text
//! lab-dns serve ADDR:PORT NAME [RCODE]
//!     answers every query with RCODE (NOERROR, SERVFAIL, NXDOMAIN, REFUSED;
//!     default NOERROR) and one TXT record holding NAME, so a client sees
//!     which server answered.
//! lab-dns query SERVER:PORT SOURCE-PORT COUNT INTERVAL-MS TIMEOUT-MS
//!     sends COUNT queries from one source port (a client whose flow the
//!     director keeps on one server), one per INTERVAL-MS, each waiting up to
//!     TIMEOUT-MS; prints "<uptime in centiseconds> <TXT or ERR>" per query.
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use lvs_api::DnsRcode;
use lvs_node_agent::health::dns;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("serve") if args.len() >= 3 => serve(&args[1], &args[2], args.get(3)),
        Some("query") if args.len() == 6 => query(&args[1..]),
        _ => Err("usage: lab-dns serve ADDR:PORT NAME [RCODE] | lab-dns query SERVER:PORT SOURCE-PORT COUNT INTERVAL-MS TIMEOUT-MS".into()),
    };
    if let Err(e) = r {
        eprintln!("lab-dns: {e}");
        std::process::exit(2);
    }
}

fn rcode(s: Option<&String>) -> Result<u8, String> {
    let r = match s.map(String::as_str).unwrap_or("NOERROR") {
        "NOERROR" => DnsRcode::NoError,
        "SERVFAIL" => DnsRcode::ServFail,
        "NXDOMAIN" => DnsRcode::NxDomain,
        "REFUSED" => DnsRcode::Refused,
        other => {
            return Err(format!(
                "rcode {other:?}: expected NOERROR, SERVFAIL, NXDOMAIN or REFUSED"
            ));
        }
    };
    Ok(dns::rcode_value(r))
}

fn serve(addr: &str, name: &str, code: Option<&String>) -> Result<(), String> {
    let code = rcode(code)?;
    if name.is_empty() || name.len() > 255 {
        return Err(format!("name {name:?}: 1 to 255 bytes"));
    }
    let sock = UdpSocket::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
    let mut buf = [0u8; 512];
    loop {
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("receiving: {e}"))?;
        let Some(mut a) = dns::answer_for(&buf[..n], code) else {
            continue;
        };
        // One TXT record for the question's name (a pointer to offset 12).
        a[6..8].copy_from_slice(&1u16.to_be_bytes());
        a.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 0]);
        a.extend_from_slice(&((name.len() + 1) as u16).to_be_bytes());
        a.push(name.len() as u8);
        a.extend_from_slice(name.as_bytes());
        let _ = sock.send_to(&a, from);
    }
}

/// The text of the last TXT record of an answer (the server's name), if any.
fn txt(a: &[u8]) -> Option<String> {
    // The answer ends with <rdlength><len><text>: walk back from the end.
    for start in (12..a.len()).rev() {
        let l = a[start] as usize;
        if start + 1 + l == a.len() && start >= 2 {
            let rdlen = u16::from_be_bytes([a[start - 2], a[start - 1]]) as usize;
            if rdlen == l + 1 {
                return Some(String::from_utf8_lossy(&a[start + 1..]).into_owned());
            }
        }
    }
    None
}

fn uptime_cs() -> String {
    let s = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let t = s.split_whitespace().next().unwrap_or("0");
    t.replace('.', "")
}

fn query(args: &[String]) -> Result<(), String> {
    let server: SocketAddr = args[0]
        .parse()
        .map_err(|e| format!("server {:?}: {e}", args[0]))?;
    let num = |i: usize, what: &str| -> Result<u64, String> {
        args[i]
            .parse()
            .map_err(|e| format!("{what} {:?}: {e}", args[i]))
    };
    let (sport, count, interval, timeout) = (
        num(1, "source port")?,
        num(2, "count")?,
        num(3, "interval")?,
        num(4, "timeout")?,
    );
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => format!("0.0.0.0:{sport}"),
        SocketAddr::V6(_) => format!("[::]:{sport}"),
    }
    .parse()
    .expect("a socket address");
    let sock = UdpSocket::bind(local).map_err(|e| format!("binding {local}: {e}"))?;
    sock.connect(server)
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    let mut buf = [0u8; 512];
    for i in 0..count {
        let started = Instant::now();
        let stamp = uptime_cs();
        let id = (i & 0xffff) as u16;
        let q = dns::encode_query(id, "lab.", dns::QTYPE_SOA).map_err(|e| e.to_string())?;
        let mut got = None;
        if sock.send(&q).is_ok() {
            let deadline = started + Duration::from_millis(timeout);
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                let _ = sock.set_read_timeout(Some(left));
                match sock.recv(&mut buf) {
                    Ok(n) => match dns::parse_answer(&buf[..n]) {
                        Some(a) if a.id == id => {
                            got = txt(&buf[..n]);
                            break;
                        }
                        _ => continue,
                    },
                    // Timeouts, and ICMP errors reported on the socket.
                    Err(_) => {
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                    }
                }
            }
        }
        println!("{stamp} {}", got.as_deref().unwrap_or("ERR"));
        if let Some(rest) = Duration::from_millis(interval).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}
