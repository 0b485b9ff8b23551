//! One probe of one target: a TCP connect, an HTTP(S) GET or a DNS query,
//! from this node to the realserver's own address. The caller bounds it by
//! the check's timeout; a probe returns `Err` with a short reason for the
//! status.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use lvs_api::HealthCheckType;
use lvs_planner::PlannedHealthCheck;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UdpSocket};

use super::dns;

/// The most body an HTTP check reads while looking for `bodyContains`.
pub const MAX_BODY: usize = 64 * 1024;

/// Probes `addr` with `check` (no timeout of its own).
pub async fn probe(addr: SocketAddr, check: &PlannedHealthCheck) -> Result<(), String> {
    match check.type_ {
        HealthCheckType::Tcp => tcp(addr).await,
        HealthCheckType::Http => {
            let s = connect(addr).await?;
            http(s, addr, check).await
        }
        HealthCheckType::Https => https(addr, check).await,
        HealthCheckType::Dns => dns_query(addr, check).await,
        // Never scheduled: a check of type None is no check.
        HealthCheckType::None => Ok(()),
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("TCP connect to {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn tcp(addr: SocketAddr) -> Result<(), String> {
    // Dropping the stream closes it: the check is the handshake.
    connect(addr).await.map(drop)
}

/// The Host header: the check's, else the address (IPv6 in brackets).
fn host_header(addr: SocketAddr, check: &PlannedHealthCheck) -> String {
    match &check.host {
        Some(h) => h.clone(),
        None => match addr {
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
            SocketAddr::V4(a) => a.ip().to_string(),
        },
    }
}

/// Whether `status` is in one of the inclusive `ranges`.
pub fn status_expected(status: u16, ranges: &[(u16, u16)]) -> bool {
    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
}

fn describe_ranges(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A GET of the check's path over `io`; healthy when the status is
/// expected and, with `bodyContains`, the first [`MAX_BODY`] bytes of the
/// body hold it.
async fn http<S>(io: S, addr: SocketAddr, check: &PlannedHealthCheck) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    let path = if check.path.is_empty() {
        "/"
    } else {
        &check.path
    };
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host_header(addr, check))
        .header(hyper::header::USER_AGENT, "lvs-node-agent health check")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| format!("HTTP request for path {path:?}: {e}"))?;
    let exchange = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP GET {path} from {addr}: {e}"))?;
        let status = resp.status().as_u16();
        if !status_expected(status, &check.expected_status) {
            return Err(format!(
                "HTTP GET {path} from {addr}: status {status}, expected {}",
                describe_ranges(&check.expected_status)
            ));
        }
        let Some(want) = check.body_contains.as_deref() else {
            return Ok(());
        };
        let mut body = resp.into_body();
        let mut seen: Vec<u8> = Vec::new();
        while seen.len() < MAX_BODY {
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = frame.map_err(|e| format!("HTTP body from {addr}: {e}"))?;
            if let Some(d) = frame.data_ref() {
                seen.extend_from_slice(d);
                if contains(&seen, want.as_bytes()) {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "HTTP GET {path} from {addr}: body does not contain {want:?}"
        ))
    };
    let mut exchange = std::pin::pin!(exchange);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = &mut exchange => r,
        c = &mut conn => {
            // The connection can end (Connection: close) before the
            // exchange has read what it already received.
            c.map_err(|e| format!("HTTP connection to {addr}: {e}"))?;
            exchange.await
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The TLS settings of HTTPS checks: verifying the certificate against the
/// system's roots, or accepting any (the default: realservers often carry
/// self-signed certificates, and a check is about liveness).
fn tls_config(verify: bool) -> Arc<rustls::ClientConfig> {
    static VERIFYING: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static ANY: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    if verify {
        VERIFYING
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "HTTPS checks: reading a system root certificate failed");
                }
                let (added, _) = roots.add_parsable_certificates(found.certs);
                tracing::debug!(roots = added, "HTTPS checks: system root certificates");
                let mut c = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .expect("the ring provider supports the default TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(c)
            })
            .clone()
    } else {
        ANY.get_or_init(|| {
            let p = provider();
            let mut c = rustls::ClientConfig::builder_with_provider(p.clone())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(p)))
                .with_no_client_auth();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(c)
        })
        .clone()
    }
}

/// Accepts any server certificate, still checking that the handshake is
/// signed by its key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn https(addr: SocketAddr, check: &PlannedHealthCheck) -> Result<(), String> {
    let tcp = connect(addr).await?;
    // SNI: the Host header when it is a name, else the address.
    let name = check
        .host
        .as_deref()
        .and_then(|h| rustls::pki_types::ServerName::try_from(h.to_string()).ok())
        .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
    let tls = tokio_rustls::TlsConnector::from(tls_config(check.verify_certificate))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    http(tls, addr, check).await
}

async fn dns_query(addr: SocketAddr, check: &PlannedHealthCheck) -> Result<(), String> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("DNS check of {addr}: binding a UDP socket: {e}"))?;
    sock.connect(addr)
        .await
        .map_err(|e| format!("DNS check of {addr}: {e}"))?;
    let id = query_id();
    let q = dns::encode_query(id, &check.dns_name, dns::QTYPE_SOA)
        .map_err(|e| format!("DNS check of {addr}: {e}"))?;
    sock.send(&q)
        .await
        .map_err(|e| format!("DNS query to {addr}: {e}"))?;
    let want = dns::rcode_value(check.expected_rcode);
    let mut buf = [0u8; 512];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("DNS answer from {addr}: {e}"))?;
        // Stray datagrams (an earlier query's late answer) are skipped.
        match dns::parse_answer(&buf[..n]) {
            Some(a) if a.id == id && a.rcode == want => return Ok(()),
            Some(a) if a.id == id => {
                return Err(format!(
                    "DNS SOA {} from {addr}: rcode {}, expected {} ({want})",
                    check.dns_name,
                    a.rcode,
                    check.expected_rcode.as_str()
                ));
            }
            _ => continue,
        }
    }
}

/// A transaction id that differs from query to query.
fn query_id() -> u16 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one(n) as u16
}
