//! Netlink messages and attributes for the families the agent encodes by
//! hand (fou, nf_tables). A message is the 16-byte `nlmsghdr`, the family's
//! own 4-byte header (`genlmsghdr` or `nfgenmsg`) and attributes; an
//! attribute (`struct nlattr`) is a 4-byte header of length and type in
//! host byte order, the value, padding to 4 bytes.

/// One message: `nlmsghdr` (length, type, flags, sequence number, port id
/// 0, host byte order), the family header, the attributes.
pub(crate) fn message(
    kind: u16,
    flags: u16,
    seq: u32,
    family_header: [u8; 4],
    attrs: &[u8],
) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&family_header);
    m.extend_from_slice(attrs);
    m
}

/// Appends one attribute, padded to 4 bytes.
pub(crate) fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The attributes of a payload (after the family's own header), as (type
/// without the nested/byte-order flags, value). Stops at the first
/// malformed one.
pub(crate) fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut b = Vec::new();
        attr(&mut b, 1, b"abc");
        attr(&mut b, 0x8002, &7u32.to_ne_bytes());
        assert_eq!(b.len(), 8 + 8);
        assert_eq!(&b[..8], &[7, 0, 1, 0, b'a', b'b', b'c', 0]);
        assert_eq!(
            attrs(&b),
            vec![(1, &b"abc"[..]), (2, &7u32.to_ne_bytes()[..])]
        );
    }

    #[test]
    fn a_truncated_attribute_ends_the_list() {
        let mut b = Vec::new();
        attr(&mut b, 1, b"abcd");
        attr(&mut b, 2, b"efgh");
        b.truncate(12);
        assert_eq!(attrs(&b), vec![(1, &b"abcd"[..])]);
    }
}
