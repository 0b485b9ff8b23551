//! Small helpers shared by the attribute codecs.

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator, Parseable,
};

/// A nested attribute list.
///
/// `flagged` remembers whether the sender set `NLA_F_NESTED`: the kernel's
/// IPVS replies don't, libnl-based tools (ipvsadm) do, and the kernel accepts
/// both. Keeping it makes `emit(parse(bytes)) == bytes` hold for either.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nested<T> {
    pub attrs: Vec<T>,
    pub flagged: bool,
}

impl<T> Nested<T> {
    /// A nest emitted the way the kernel emits it (no `NLA_F_NESTED`).
    pub fn new(attrs: Vec<T>) -> Self {
        Self {
            attrs,
            flagged: false,
        }
    }

    /// A nest emitted with `NLA_F_NESTED`, as libnl does.
    pub fn flagged(attrs: Vec<T>) -> Self {
        Self {
            attrs,
            flagged: true,
        }
    }

    pub(crate) fn kind(&self, kind: u16) -> u16 {
        if self.flagged {
            kind | NLA_F_NESTED
        } else {
            kind
        }
    }
}

impl<T: Nla> Nested<T> {
    pub(crate) fn value_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    pub(crate) fn emit_value(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

/// Parse every attribute of `payload` with `parse_one`, failing on the first
/// malformed one.
pub(crate) fn parse_attrs<T>(
    payload: &[u8],
    mut parse_one: impl FnMut(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    NlasIterator::new(payload)
        .map(|nla| {
            nla.and_then(|nla| {
                // netlink-packet-core 0.9 cannot re-emit an attribute with
                // both flags (setting the second clears the first), and no
                // sender sets both, so such input is rejected as malformed.
                if nla.nested_flag() && nla.network_byte_order_flag() {
                    return Err(DecodeError::from(format!(
                        "invalid attribute type {}: NLA_F_NESTED and NLA_F_NET_BYTEORDER are both set",
                        nla.kind()
                    )));
                }
                parse_one(&nla)
            })
        })
        .collect()
}

pub(crate) fn parse_nested<B, T>(
    buf: &NlaBuffer<&B>,
    what: &'static str,
) -> Result<Nested<T>, DecodeError>
where
    B: AsRef<[u8]> + ?Sized,
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    let payload = buf.value();
    // Senders pad every attribute, so a nest's payload is a multiple of 4.
    // Requiring it keeps a re-emitted nest exactly as long as the original
    // (an unpadded last child would grow it, possibly past the u16 length).
    if !payload.len().is_multiple_of(4) {
        return Err(DecodeError::from(format!(
            "invalid {what}: nested payload is {} bytes, expected a multiple of 4",
            payload.len()
        )));
    }
    let attrs = parse_attrs(payload, |nla| T::parse(nla))
        .with_context(|| format!("invalid attributes nested in {what}"))?;
    Ok(Nested {
        attrs,
        flagged: buf.nested_flag(),
    })
}

/// Strings in this family are `NLA_NUL_STRING`: exactly one trailing NUL.
/// Anything else is malformed, which also keeps emit(parse(x)) == x.
pub(crate) fn parse_nul_string(payload: &[u8]) -> Result<String, DecodeError> {
    match payload.split_last() {
        Some((0, body)) if !body.contains(&0) => String::from_utf8(body.to_vec())
            .map_err(|e| DecodeError::from(format!("string is not UTF-8: {e}"))),
        Some((0, _)) => Err(DecodeError::from(
            "string has a NUL before its end, expected exactly one trailing NUL",
        )),
        Some(_) => Err(DecodeError::from(
            "string is not NUL-terminated, expected a trailing NUL",
        )),
        None => Err(DecodeError::from(
            "string is empty, expected at least the trailing NUL",
        )),
    }
}

pub(crate) fn nul_string_len(s: &str) -> usize {
    s.len() + 1
}

pub(crate) fn emit_nul_string(buffer: &mut [u8], s: &str) {
    buffer[..s.len()].copy_from_slice(s.as_bytes());
    buffer[s.len()] = 0;
}

/// Addresses travel as 4 bytes (accepted on input) or as the 16-byte
/// `union nf_inet_addr` (what dumps return, even for IPv4). Which of the two
/// the bytes mean depends on a sibling family attribute, so the codec keeps
/// them raw and the typed layer decodes them.
pub(crate) fn parse_raw_addr(payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match payload.len() {
        4 | 16 => Ok(payload.to_vec()),
        n => Err(DecodeError::from(format!(
            "address is {n} bytes, expected 4 or 16"
        ))),
    }
}

pub(crate) fn parse_array<const N: usize>(payload: &[u8]) -> Result<[u8; N], DecodeError> {
    payload
        .try_into()
        .map_err(|_| DecodeError::invalid_number(N, payload.len()))
}
