//! The little of DNS a health check needs: a query for one name (type SOA,
//! class IN) and the header of the answer. Only the 12-byte header and the
//! question are written or read; answers are not parsed.

use lvs_api::DnsRcode;

/// Query type SOA: every zone has one, and a server answers it from its own
/// data.
pub const QTYPE_SOA: u16 = 6;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;
/// The QR bit of the flags: set in answers.
const FLAG_QR: u16 = 0x8000;
/// Recursion desired, as resolvers send it.
const FLAG_RD: u16 = 0x0100;

/// Why a name cannot be put into a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("DNS name {0:?}: a label is empty or longer than 63 bytes")]
    Label(String),
    #[error("DNS name {0:?}: longer than 255 bytes")]
    TooLong(String),
}

/// The query bytes for `name` (a trailing dot optional; "." or "" is the
/// root) with transaction id `id`.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, NameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(NameError::Label(name.to_string()));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - HEADER_LEN > 255 {
        return Err(NameError::TooLong(name.to_string()));
    }
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// The header of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerHeader {
    pub id: u16,
    /// The response code (the low four bits of the flags).
    pub rcode: u8,
}

/// Reads the header of a message that is an answer (QR set); `None` for
/// anything shorter than a header or not an answer.
pub fn parse_answer(msg: &[u8]) -> Option<AnswerHeader> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & FLAG_QR == 0 {
        return None;
    }
    Some(AnswerHeader {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        rcode: (flags & 0x000f) as u8,
    })
}

/// The wire value of an rcode (RFC 1035, 4.1.1).
pub fn rcode_value(r: DnsRcode) -> u8 {
    match r {
        DnsRcode::NoError => 0,
        DnsRcode::ServFail => 2,
        DnsRcode::NxDomain => 3,
        DnsRcode::Refused => 5,
    }
}

/// The answer a minimal server gives to `query`: the same id and question,
/// QR set, and `rcode`, with no records. `None` when `query` is not a
/// query. Used by the lab's DNS responder and by tests.
pub fn answer_for(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if query.len() < HEADER_LEN {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & FLAG_QR != 0 {
        return None;
    }
    let mut out = query.to_vec();
    let flags = FLAG_QR | (flags & FLAG_RD) | u16::from(rcode & 0x0f);
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    // No answer, authority or additional records.
    out[6..12].fill(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes_are_header_then_question() {
        let q = encode_query(0xbeef, "example.org.", QTYPE_SOA).unwrap();
        let want: Vec<u8> = [
            &[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            &[7],
            b"example",
            &[3],
            b"org",
            &[0, 0, 6, 0, 1],
        ]
        .concat();
        assert_eq!(q, want);
        // Without the trailing dot: the same bytes.
        assert_eq!(
            encode_query(0xbeef, "example.org", QTYPE_SOA).unwrap(),
            want
        );
    }

    #[test]
    fn root_is_a_single_zero_label() {
        let q = encode_query(1, ".", QTYPE_SOA).unwrap();
        assert_eq!(&q[12..], &[0, 0, 6, 0, 1]);
        assert_eq!(encode_query(1, "", QTYPE_SOA).unwrap(), q);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(matches!(
            encode_query(1, "a..b", QTYPE_SOA),
            Err(NameError::Label(_))
        ));
        let long = "a".repeat(64);
        assert!(matches!(
            encode_query(1, &long, QTYPE_SOA),
            Err(NameError::Label(_))
        ));
        let many = vec!["abcdefghi"; 30].join(".");
        assert!(matches!(
            encode_query(1, &many, QTYPE_SOA),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn answers_carry_id_and_rcode() {
        let q = encode_query(77, "lab.", QTYPE_SOA).unwrap();
        // A query is not an answer.
        assert_eq!(parse_answer(&q), None);
        for r in [
            DnsRcode::NoError,
            DnsRcode::ServFail,
            DnsRcode::NxDomain,
            DnsRcode::Refused,
        ] {
            let a = answer_for(&q, rcode_value(r)).unwrap();
            assert_eq!(
                parse_answer(&a),
                Some(AnswerHeader {
                    id: 77,
                    rcode: rcode_value(r)
                })
            );
            assert_eq!(&a[12..], &q[12..], "the question is echoed");
        }
        assert_eq!(parse_answer(&q[..11]), None);
        // An answer is not answered.
        let a = answer_for(&q, 0).unwrap();
        assert_eq!(answer_for(&a, 0), None);
    }
}
