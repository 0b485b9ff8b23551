//! Attributes nested in the `*_ATTR_STATS` and `*_ATTR_STATS64` nests.
//!
//! The two nests use the same attribute numbers with different widths: the
//! legacy nest has 32-bit counters and rates but 64-bit byte counters, the
//! 64-bit nest has 64-bit everything. Two enums keep the width in the type so
//! a value always emits the bytes it was parsed from.

use netlink_packet_core::{DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable};

use crate::constants::*;

/// Native-endian fixed-width integer read/written by the stats codecs.
trait NeInt: Sized + Copy {
    const LEN: usize;
    fn parse(payload: &[u8]) -> Result<Self, DecodeError>;
    fn emit(self, buffer: &mut [u8]);
}

impl NeInt for u32 {
    const LEN: usize = 4;
    fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        netlink_packet_core::parse_u32(payload)
    }
    fn emit(self, buffer: &mut [u8]) {
        buffer[..4].copy_from_slice(&self.to_ne_bytes())
    }
}

impl NeInt for u64 {
    const LEN: usize = 8;
    fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        netlink_packet_core::parse_u64(payload)
    }
    fn emit(self, buffer: &mut [u8]) {
        buffer[..8].copy_from_slice(&self.to_ne_bytes())
    }
}

macro_rules! stats_attr {
    ($(#[$meta:meta])* $name:ident { $($variant:ident($ty:ty) = $kind:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $($variant($ty),)+
            /// Unknown attributes, and `IPVS_STATS_ATTR_PAD`, which the
            /// kernel adds before 64-bit values on architectures that need
            /// aligned access.
            Other(DefaultNla),
        }

        impl Nla for $name {
            fn value_len(&self) -> usize {
                match self {
                    $(Self::$variant(_) => <$ty as NeInt>::LEN,)+
                    Self::Other(nla) => nla.value_len(),
                }
            }

            fn kind(&self) -> u16 {
                match self {
                    $(Self::$variant(_) => $kind,)+
                    Self::Other(nla) => nla.kind(),
                }
            }

            fn emit_value(&self, buffer: &mut [u8]) {
                match self {
                    $(Self::$variant(v) => NeInt::emit(*v, buffer),)+
                    Self::Other(nla) => nla.emit_value(buffer),
                }
            }
        }

        impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for $name {
            fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
                let payload = buf.value();
                Ok(match buf.kind() {
                    $($kind => Self::$variant(
                        <$ty as NeInt>::parse(payload)
                            .context(concat!("invalid ", stringify!($kind), " value in ", stringify!($name)))?,
                    ),)+
                    _ => Self::Other(
                        DefaultNla::parse(buf).context("invalid unknown IPVS stats attribute")?,
                    ),
                })
            }
        }
    };
}

stats_attr! {
    /// Legacy `IPVS_*_ATTR_STATS` nest.
    Stats32Attr {
        Conns(u32) = IPVS_STATS_ATTR_CONNS,
        InPkts(u32) = IPVS_STATS_ATTR_INPKTS,
        OutPkts(u32) = IPVS_STATS_ATTR_OUTPKTS,
        InBytes(u64) = IPVS_STATS_ATTR_INBYTES,
        OutBytes(u64) = IPVS_STATS_ATTR_OUTBYTES,
        Cps(u32) = IPVS_STATS_ATTR_CPS,
        InPps(u32) = IPVS_STATS_ATTR_INPPS,
        OutPps(u32) = IPVS_STATS_ATTR_OUTPPS,
        InBps(u32) = IPVS_STATS_ATTR_INBPS,
        OutBps(u32) = IPVS_STATS_ATTR_OUTBPS,
    }
}

stats_attr! {
    /// `IPVS_*_ATTR_STATS64` nest (kernel >= 4.1).
    Stats64Attr {
        Conns(u64) = IPVS_STATS_ATTR_CONNS,
        InPkts(u64) = IPVS_STATS_ATTR_INPKTS,
        OutPkts(u64) = IPVS_STATS_ATTR_OUTPKTS,
        InBytes(u64) = IPVS_STATS_ATTR_INBYTES,
        OutBytes(u64) = IPVS_STATS_ATTR_OUTBYTES,
        Cps(u64) = IPVS_STATS_ATTR_CPS,
        InPps(u64) = IPVS_STATS_ATTR_INPPS,
        OutPps(u64) = IPVS_STATS_ATTR_OUTPPS,
        InBps(u64) = IPVS_STATS_ATTR_INBPS,
        OutBps(u64) = IPVS_STATS_ATTR_OUTBPS,
    }
}
