//! tss-lib save files (bnb-chain/tss-lib, GG18/GG20 ECDSA `LocalPartySaveData` and EdDSA save
//! data): one holder's share of a key, read exactly.
//!
//! tss-lib writes big integers as bare JSON numbers (`"Xi": 1123…807`), which a JSON parser
//! reads as `f64` and rounds. The file is therefore first rewritten with every number quoted
//! ([`quote_numbers`]), then read with serde, and each decimal string is converted exactly.
//! Points are `{"Curve": NAME, "Coords": [x, y]}` in affine coordinates: secp256k1's are checked
//! on the curve by SEC1 decoding; Ed25519's by the curve equation, then encoded (y and x's
//! parity) and decoded into the prime-order group. The Paillier and ring-Pedersen material is
//! not read: CGGMP21 needs its own (an imported ECDSA key gets the cluster's auxiliary info).

use num_bigint::BigUint;
use reshare::generic_ec::curves::{Ed25519, Secp256k1};
use reshare::generic_ec::{Curve, Point, Scalar, SecretScalar};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ImportError, LegacyShare};

/// A point as tss-lib writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPoint {
    #[serde(rename = "Curve")]
    curve: String,
    #[serde(rename = "Coords")]
    coords: [String; 2],
}

/// The fields of a save file an import reads (others, the Paillier material, are skipped).
#[derive(Deserialize)]
struct SaveData {
    /// The secret share, zeroized on drop.
    #[serde(rename = "Xi")]
    xi: String,
    #[serde(rename = "ShareID")]
    share_id: String,
    #[serde(rename = "Ks")]
    ks: Vec<String>,
    #[serde(rename = "BigXj")]
    big_xj: Vec<JsonPoint>,
    #[serde(rename = "ECDSAPub")]
    ecdsa_pub: Option<JsonPoint>,
    #[serde(rename = "EDDSAPub")]
    eddsa_pub: Option<JsonPoint>,
}

impl Drop for SaveData {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.xi);
    }
}

/// Quotes every number outside a string, so that serde reads it as text; refuses numbers that
/// are not integers (tss-lib writes none).
pub fn quote_numbers(text: &str) -> Result<Zeroizing<String>, ImportError> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() + text.len() / 8));
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    let mut escaped = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '-' | '0'..='9' => {
                let mut end = i + c.len_utf8();
                while let Some((j, d)) = chars.peek().copied() {
                    if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-') {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let number = &text[i..end];
                if !number.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ImportError::Malformed(format!(
                        "a number that is not a non-negative integer at byte {i}"
                    )));
                }
                out.push('"');
                out.push_str(number);
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// A decimal integer as 32 big-endian bytes, converted digit by digit in a buffer that is
/// zeroized (the secret share passes through here); `what` names the field in errors.
pub(super) fn decimal_32(text: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, ImportError> {
    let bad = || ImportError::Malformed(format!("{what} is not a decimal integer below 2^256"));
    if text.is_empty() {
        return Err(bad());
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for digit in text.bytes() {
        if !digit.is_ascii_digit() {
            return Err(bad());
        }
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return Err(bad());
        }
    }
    Ok(out)
}

/// A scalar, reduced modulo the group order as tss-lib computes (its EdDSA share ids are not
/// reduced in the file).
fn scalar<E: Curve>(text: &str, what: &str) -> Result<Scalar<E>, ImportError> {
    Ok(Scalar::from_be_bytes_mod_order(*decimal_32(text, what)?))
}

/// A point on `E` from affine coordinates.
trait FromAffine: Curve {
    /// tss-lib's name of the curve.
    const TSS_NAME: &'static str;
    fn from_affine(x: &[u8; 32], y: &[u8; 32]) -> Option<Point<Self>>;
}

impl FromAffine for Secp256k1 {
    const TSS_NAME: &'static str = "secp256k1";
    fn from_affine(x: &[u8; 32], y: &[u8; 32]) -> Option<Point<Self>> {
        let mut sec1 = [0u8; 65];
        sec1[0] = 4;
        sec1[1..33].copy_from_slice(x);
        sec1[33..].copy_from_slice(y);
        // SEC1 decoding checks the curve equation.
        Point::from_bytes(sec1).ok()
    }
}

impl FromAffine for Ed25519 {
    const TSS_NAME: &'static str = "ed25519";
    fn from_affine(x: &[u8; 32], y: &[u8; 32]) -> Option<Point<Self>> {
        // -x² + y² = 1 + d·x²·y² (mod p), d = -121665/121666: the encoding below keeps only
        // x's parity, so the equation is what checks x.
        let p = (BigUint::from(1u8) << 255u32) - BigUint::from(19u8);
        let (bx, by) = (BigUint::from_bytes_be(x), BigUint::from_bytes_be(y));
        if bx >= p || by >= p {
            return None;
        }
        let inv = |v: &BigUint| v.modpow(&(&p - BigUint::from(2u8)), &p);
        let d = ((&p - BigUint::from(121_665u32)) * inv(&BigUint::from(121_666u32))) % &p;
        let (x2, y2) = ((&bx * &bx) % &p, (&by * &by) % &p);
        let left = (&y2 + &p - &x2) % &p;
        let right = (BigUint::from(1u8) + d * &x2 % &p * &y2) % &p;
        if left != right {
            return None;
        }
        // RFC 8032 encoding: y little-endian, x's parity in the top bit. Decoding refuses a
        // point outside the prime-order group.
        let mut enc = *y;
        enc.reverse();
        enc[31] |= (x[31] & 1) << 7;
        Point::from_bytes(enc).ok()
    }
}

fn point<E: FromAffine>(p: &JsonPoint, what: &str) -> Result<Point<E>, ImportError> {
    if p.curve != E::TSS_NAME {
        return Err(ImportError::Curve {
            want: E::TSS_NAME,
            got: p.curve.chars().take(32).collect(),
        });
    }
    let x = decimal_32(&p.coords[0], what)?;
    let y = decimal_32(&p.coords[1], what)?;
    E::from_affine(&x, &y)
        .ok_or_else(|| ImportError::Malformed(format!("{what} is not a point of {}", E::TSS_NAME)))
}

fn parse<E: FromAffine>(text: &str, ecdsa: bool) -> Result<LegacyShare<E>, ImportError> {
    let quoted = quote_numbers(text)?;
    let data: SaveData = serde_json::from_str(&quoted).map_err(|e| {
        ImportError::Malformed(format!(
            "not a tss-lib save file: {}",
            e.to_string().chars().take(160).collect::<String>()
        ))
    })?;
    let key = match (ecdsa, &data.ecdsa_pub, &data.eddsa_pub) {
        (true, Some(k), None) | (false, None, Some(k)) => k,
        (true, None, Some(_)) | (false, Some(_), None) => {
            return Err(ImportError::Format(if ecdsa {
                "an EdDSA save file where an ECDSA one is expected"
            } else {
                "an ECDSA save file where an EdDSA one is expected"
            }));
        }
        _ => {
            return Err(ImportError::Malformed(
                "a save file needs exactly one of ECDSAPub and EDDSAPub".into(),
            ));
        }
    };
    let public_key = point::<E>(key, "the public key")?;
    if data.ks.len() != data.big_xj.len() {
        return Err(ImportError::Malformed(format!(
            "{} share ids (Ks) but {} public shares (BigXj)",
            data.ks.len(),
            data.big_xj.len()
        )));
    }
    let points = data
        .ks
        .iter()
        .enumerate()
        .map(|(i, k)| scalar::<E>(k, &format!("Ks[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let public_shares = data
        .big_xj
        .iter()
        .enumerate()
        .map(|(i, p)| point::<E>(p, &format!("BigXj[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let own = scalar::<E>(&data.share_id, "ShareID")?;
    let index = points.iter().position(|k| *k == own).ok_or_else(|| {
        ImportError::Malformed("the holder's ShareID is not among the share ids (Ks)".into())
    })?;
    let mut x = *decimal_32(&data.xi, "Xi")?;
    let mut xi = Scalar::<E>::from_be_bytes_mod_order(x);
    zeroize::Zeroize::zeroize(&mut x);
    let share = SecretScalar::new(&mut xi);
    Ok(LegacyShare {
        index,
        share,
        points,
        public_shares,
        public_key,
        chain_code: None,
    })
}

/// One holder's tss-lib ECDSA (secp256k1) `LocalPartySaveData`.
pub fn parse_ecdsa(text: &str) -> Result<LegacyShare<Secp256k1>, ImportError> {
    parse(text, true)
}

/// One holder's tss-lib EdDSA (Ed25519) save data.
pub fn parse_eddsa(text: &str) -> Result<LegacyShare<Ed25519>, ImportError> {
    parse(text, false)
}
