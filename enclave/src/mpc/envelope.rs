//! The storage envelope of both schemes' persisted secrets (and of ECDSA partial signatures):
//! one versioned, self-describing format, plus the layout EdDSA shares had before it.
//!
//! # Format
//! Version 1 is a CBOR map `{version: 1, kind: "<scheme>/<kind>", body}`, for example
//! `cggmp21-secp256k1/key-share` or `frost-ed25519/key-share` ([`Kind`]). Decoding rejects
//! unknown versions, another kind than the one expected, unknown fields of the envelope and
//! trailing bytes, and the body's own decoding validates it. ECDSA blobs have always been
//! written in this format.
//!
//! # Legacy layout
//! EdDSA shares written before this envelope was shared are the CBOR map
//! `{"FrostEd25519V1": body}` with the same body ([`Format::LegacyFrostEd25519V1`]). They still
//! decode; new shares are written in version 1.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::MpcError;

/// The only version of the envelope written.
pub(super) const VERSION: u16 = 1;

/// What a stored blob holds, scheme included.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    /// Two safe primes for an ECDSA party's Paillier key.
    EcdsaPrimes,
    /// An ECDSA party's auxiliary info.
    EcdsaAuxInfo,
    /// A complete ECDSA key share.
    EcdsaKeyShare,
    /// One signer's ECDSA partial signature (transported, not stored).
    EcdsaPartialSignature,
    /// An EdDSA (FROST Ed25519) key share.
    EddsaKeyShare,
}

impl Kind {
    /// The tag written in the envelope's `kind` field.
    pub(super) fn tag(self) -> &'static str {
        match self {
            Kind::EcdsaPrimes => "cggmp21-secp256k1/primes",
            Kind::EcdsaAuxInfo => "cggmp21-secp256k1/aux-info",
            Kind::EcdsaKeyShare => "cggmp21-secp256k1/key-share",
            Kind::EcdsaPartialSignature => "cggmp21-secp256k1/partial-signature",
            Kind::EddsaKeyShare => "frost-ed25519/key-share",
        }
    }
}

/// The layout a blob was written in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Format {
    /// `{version: 1, kind, body}`: what is written now.
    V1,
    /// `{"FrostEd25519V1": body}`: EdDSA shares written before the shared envelope.
    LegacyFrostEd25519V1,
}

#[derive(Serialize)]
pub(super) struct StoredRef<'a, T> {
    pub(super) version: u16,
    pub(super) kind: &'a str,
    pub(super) body: &'a T,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredHeader {
    version: u16,
    kind: String,
    #[serde(rename = "body")]
    _body: IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored<T> {
    #[serde(rename = "version")]
    _version: u16,
    #[serde(rename = "kind")]
    _kind: String,
    body: T,
}

/// The legacy EdDSA layout (serialization side).
#[derive(Serialize)]
enum LegacyRef<'a, T> {
    FrostEd25519V1(&'a T),
}

/// The legacy EdDSA layout (deserialization side).
#[derive(Deserialize)]
enum Legacy<T> {
    FrostEd25519V1(T),
}

/// Counts the bytes a value encodes to, so the real buffer is allocated once.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes a `kind` written in any format this version reads, dropping which one it was.
pub(super) fn decode_body<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, MpcError> {
    decode(kind, bytes).map(|(body, _)| body)
}

/// Encodes `body` as a `kind` in the current format.
pub(super) fn encode<T: Serialize>(kind: Kind, body: &T) -> Result<Zeroizing<Vec<u8>>, MpcError> {
    encode_as(Format::V1, kind, body)
}

/// Encodes `body` as a `kind` in `format`, into a buffer sized exactly before writing (no
/// reallocation leaves copies of a secret behind).
pub(super) fn encode_as<T: Serialize>(
    format: Format,
    kind: Kind,
    body: &T,
) -> Result<Zeroizing<Vec<u8>>, MpcError> {
    match format {
        Format::V1 => write_exact(
            kind,
            &StoredRef {
                version: VERSION,
                kind: kind.tag(),
                body,
            },
        ),
        Format::LegacyFrostEd25519V1 => write_exact(kind, &LegacyRef::FrostEd25519V1(body)),
    }
}

fn write_exact<T: Serialize>(kind: Kind, value: &T) -> Result<Zeroizing<Vec<u8>>, MpcError> {
    let internal = |e: ciborium::ser::Error<std::io::Error>| {
        MpcError::Internal(format!("encoding {}: {e}", kind.tag()))
    };
    let mut counter = ByteCounter(0);
    ciborium::into_writer(value, &mut counter).map_err(internal)?;
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    ciborium::into_writer(value, &mut *out).map_err(internal)?;
    Ok(out)
}

/// Decodes a `kind` written in any format this version reads; returns the body and the format
/// it was written in. Only EdDSA key shares may be in the legacy layout.
pub(super) fn decode<T: DeserializeOwned>(
    kind: Kind,
    bytes: &[u8],
) -> Result<(T, Format), MpcError> {
    let tag = kind.tag();
    let bad = |what: &str| MpcError::BadInput(format!("stored {tag}: {what}"));
    // ciborium copies decoded strings and bytes through this buffer: zeroize it after.
    let mut scratch = Zeroizing::new([0u8; 4096]);
    let mut rest = bytes;
    let header: Result<StoredHeader, _> =
        ciborium::de::from_reader_with_buffer(&mut rest, &mut scratch[..]);
    let header = match header {
        Ok(header) => header,
        Err(_) if kind == Kind::EddsaKeyShare => {
            return decode_legacy(bytes, &mut scratch[..])
                .map(|body| (body, Format::LegacyFrostEd25519V1));
        }
        Err(_) => return Err(bad("does not decode")),
    };
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if header.version != VERSION {
        return Err(bad(&format!("unknown version {}", header.version)));
    }
    if header.kind != tag {
        return Err(bad(&format!("holds a {}", header.kind)));
    }
    let stored: Stored<T> = ciborium::de::from_reader_with_buffer(bytes, &mut scratch[..])
        .map_err(|e| {
            // Validation failures of cggmp21 types surface here as deserialization errors.
            bad(&format!("invalid body: {e}"))
        })?;
    Ok((stored.body, Format::V1))
}

/// Decodes the legacy EdDSA layout, with the errors EdDSA shares always had.
fn decode_legacy<T: DeserializeOwned>(bytes: &[u8], scratch: &mut [u8]) -> Result<T, MpcError> {
    let mut reader = bytes;
    let stored: Legacy<T> =
        ciborium::de::from_reader_with_buffer(&mut reader, scratch).map_err(|e| {
            MpcError::BadInput(format!("eddsa share does not decode: {}", cbor_error(&e)))
        })?;
    if !reader.is_empty() {
        return Err(MpcError::BadInput(
            "trailing bytes after the eddsa share".into(),
        ));
    }
    let Legacy::FrostEd25519V1(body) = stored;
    Ok(body)
}

/// Describes a CBOR decoding error without echoing any decoded content.
pub(super) fn cbor_error<E>(err: &ciborium::de::Error<E>) -> String {
    match err {
        ciborium::de::Error::Io(_) => "truncated cbor".to_owned(),
        ciborium::de::Error::Syntax(offset) => format!("cbor syntax error at offset {offset}"),
        ciborium::de::Error::Semantic(Some(offset), _) => {
            format!("unexpected cbor content at offset {offset}")
        }
        ciborium::de::Error::Semantic(None, _) => "unexpected cbor content".to_owned(),
        ciborium::de::Error::RecursionLimitExceeded => "cbor nested too deeply".to_owned(),
    }
}
