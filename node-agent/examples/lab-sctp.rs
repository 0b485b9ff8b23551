//! A tiny SCTP server and client for the kernel lab's SCTP scenario
//! (agent-sctp; busybox has no SCTP tool). One-to-one style sockets
//! (SOCK_STREAM, IPPROTO_SCTP): one association per connection.
//!
//! ```text
//! lab-sctp serve ADDR:PORT NAME
//!     accepts associations on ADDR:PORT (bound to that one address, so the
//!     server offers no other address to the peer) and answers the first
//!     message of each with NAME, so a client sees which server answered.
//! lab-sctp query SERVER:PORT FIRST-SOURCE-PORT COUNT TIMEOUT-MS
//!     opens COUNT associations one after another, association i from source
//!     port FIRST-SOURCE-PORT+i (a new IPVS connection each), sends one
//!     message and waits up to TIMEOUT-MS for the answer; prints
//!     "<source port> <answer or ERR>" per association.
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("serve") if args.len() == 3 => serve(&args[1], &args[2]),
        Some("query") if args.len() == 5 => query(&args[1..]),
        _ => Err("usage: lab-sctp serve ADDR:PORT NAME | lab-sctp query SERVER:PORT FIRST-SOURCE-PORT COUNT TIMEOUT-MS".into()),
    };
    if let Err(e) = r {
        eprintln!("lab-sctp: {e}");
        std::process::exit(2);
    }
}

fn sctp_socket(addr: &SocketAddr) -> Result<Socket, String> {
    Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::SCTP),
    )
    .map_err(|e| format!("SCTP socket: {e} (expected the kernel's sctp module, `modprobe sctp`)"))
}

fn parse(what: &str, s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("{what} {s:?}: {e} (expected ADDR:PORT)"))
}

fn serve(addr: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("name {name:?}: 1 to 255 bytes"));
    }
    let addr = parse("address", addr)?;
    let sock = sctp_socket(&addr)?;
    let _ = sock.set_reuse_address(true);
    sock.bind(&SockAddr::from(addr))
        .map_err(|e| format!("binding {addr}: {e}"))?;
    sock.listen(64)
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    loop {
        let (mut conn, _) = sock.accept().map_err(|e| format!("accepting: {e}"))?;
        let name = name.to_owned();
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 512];
            if matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                let _ = conn.write_all(name.as_bytes());
            }
            // Wait for the client to end the association (SHUTDOWN), so the
            // answer is never cut off by an ABORT from our side.
            let _ = conn.read(&mut buf);
        });
    }
}

fn query(args: &[String]) -> Result<(), String> {
    let server = parse("server", &args[0])?;
    let num = |i: usize, what: &str| -> Result<u64, String> {
        args[i]
            .parse()
            .map_err(|e| format!("{what} {:?}: {e}", args[i]))
    };
    let (first, count, timeout) = (num(1, "source port")?, num(2, "count")?, num(3, "timeout")?);
    if first + count > 65536 {
        return Err(format!(
            "source ports {first}..{}: beyond 65535",
            first + count
        ));
    }
    let timeout = Duration::from_millis(timeout.max(1));
    for sport in first..first + count {
        let got = associate(server, sport as u16, timeout);
        println!("{sport} {}", got.as_deref().unwrap_or("ERR"));
        if let Err(e) = got {
            eprintln!("lab-sctp: association from source port {sport} to {server}: {e}");
        }
    }
    Ok(())
}

/// One association from source port `sport`: send a message, read the answer.
fn associate(server: SocketAddr, sport: u16, timeout: Duration) -> Result<String, String> {
    let sock = sctp_socket(&server)?;
    let _ = sock.set_reuse_address(true);
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, sport).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, sport).into(),
    };
    sock.bind(&SockAddr::from(local))
        .map_err(|e| format!("binding {local}: {e}"))?;
    sock.connect_timeout(&SockAddr::from(server), timeout)
        .map_err(|e| format!("connecting: {e}"))?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| format!("read timeout: {e}"))?;
    let mut s = &sock;
    s.write_all(b"who are you?")
        .map_err(|e| format!("sending: {e}"))?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).map_err(|e| format!("reading: {e}"))?;
    if n == 0 {
        return Err("the association ended without an answer".into());
    }
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    // A graceful SHUTDOWN, so the server's side ends without an ABORT.
    let _ = sock.shutdown(Shutdown::Write);
    let _ = s.read(&mut buf);
    Ok(answer)
}
