//! Byte strings as lowercase hex, the form every byte field of the API takes.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Bytes as a hex string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hex(pub Vec<u8>);

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", hex::encode(&self.0))
    }
}

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s)
            .map(Hex)
            .map_err(|e| serde::de::Error::custom(format!("not hex: {e}")))
    }
}

impl From<&ByteBuf> for Hex {
    fn from(b: &ByteBuf) -> Self {
        Hex(b.to_vec())
    }
}

/// The wire form of hex bytes.
pub fn buf(h: &Hex) -> ByteBuf {
    ByteBuf::from(h.0.clone())
}

/// Hex forms of wire byte strings.
pub(super) fn hexes(v: &[ByteBuf]) -> Vec<Hex> {
    v.iter().map(Hex::from).collect()
}

/// Wire forms of hex byte strings.
pub(super) fn bufs(v: &[Hex]) -> Vec<ByteBuf> {
    v.iter().map(buf).collect()
}

/// A cluster id as 64 hex digits (the digest of the approved genesis, ADR 0013).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterHex(pub protocol::genesis::ClusterId);

impl std::fmt::Debug for ClusterHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for ClusterHex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for ClusterHex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        protocol::genesis::ClusterId::from_hex(&s)
            .map(ClusterHex)
            .map_err(serde::de::Error::custom)
    }
}
