//! The KMS key an enclave seals under, named by its full key ARN.
//!
//! An enclave names its KMS key itself (ADR 0013): every `GenerateDataKey` and `Decrypt` it asks
//! its parent for carries the ARN, and an answer for another key is refused. Only key ARNs are
//! accepted, never aliases (the key administrator can re-point an alias) nor bare key ids (they
//! name no account or region, which approvers must see). Region and account are read from the
//! ARN, so they cannot disagree with it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest ARN accepted (the attestation binding carries its length in one byte).
pub const MAX_KMS_KEY_ARN_LEN: usize = 200;

const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// A KMS key ARN: `arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KmsKeyArn(String);

/// Why a string is not a KMS key ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// Empty or longer than [`MAX_KMS_KEY_ARN_LEN`].
    #[error("a KMS key ARN is 1 to {MAX_KMS_KEY_ARN_LEN} bytes, not {0}")]
    Length(usize),
    /// Not `arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE`.
    #[error("not a KMS ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): {0}")]
    NotKmsArn(String),
    /// A partition other than aws, aws-cn, aws-us-gov.
    #[error("unknown AWS partition `{0}`")]
    Partition(String),
    /// A region that is empty or not `[a-z0-9-]`.
    #[error("bad region `{0}`")]
    Region(String),
    /// An account that is not 12 digits.
    #[error("bad account `{0}` (12 digits)")]
    Account(String),
    /// An alias ARN: the key administrator can re-point an alias, so a node must name the key.
    #[error("`{0}` is an alias ARN; name the key itself (arn:…:key/ID)")]
    Alias(String),
    /// A resource that is not `key/ID` with ID of letters, digits and `-`.
    #[error("bad key resource `{0}` (key/ID)")]
    Resource(String),
}

/// Whether `region` has the shape of an AWS region: `<two to four letters>(-<word>)+-<number>`
/// (`eu-west-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`, `eusc-de-east-1`), and no
/// `fips` part (a FIPS endpoint is another host name). The enclave derives KMS's host
/// name from it, so nothing else may pass: not `s3`, `s3-us-west-2` or `fips`-style names that
/// would name another service's host.
fn region_shaped(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    region.len() <= 32
        && parts.len() >= 3
        && (2..=4).contains(&first.len())
        && !parts.contains(&"fips")
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

impl KmsKeyArn {
    /// Parses and checks a key ARN.
    pub fn parse(s: &str) -> Result<Self, ArnError> {
        if s.is_empty() || s.len() > MAX_KMS_KEY_ARN_LEN {
            return Err(ArnError::Length(s.len()));
        }
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(ArnError::NotKmsArn(s.to_string()));
        };
        if arn != "arn" || service != "kms" {
            return Err(ArnError::NotKmsArn(s.to_string()));
        }
        if !PARTITIONS.contains(&partition) {
            return Err(ArnError::Partition(partition.to_string()));
        }
        if !region_shaped(region) {
            return Err(ArnError::Region(region.to_string()));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ArnError::Account(account.to_string()));
        }
        if resource.starts_with("alias/") {
            return Err(ArnError::Alias(s.to_string()));
        }
        let id_ok = resource.strip_prefix("key/").is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !id_ok {
            return Err(ArnError::Resource(resource.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn field(&self, i: usize) -> &str {
        self.0.split(':').nth(i).unwrap_or_default()
    }

    /// The partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &str {
        self.field(1)
    }

    /// KMS's HTTPS host for this key: `kms.<region>.amazonaws.com` (`.amazonaws.com.cn` in
    /// China). The enclave checks KMS's certificate for this name; the parent tunnels to it.
    pub fn kms_host(&self) -> String {
        let domain = match self.partition() {
            "aws-cn" => "amazonaws.com.cn",
            _ => "amazonaws.com",
        };
        format!("kms.{}.{domain}", self.region())
    }

    /// The region.
    pub fn region(&self) -> &str {
        self.field(3)
    }

    /// The 12-digit account.
    pub fn account(&self) -> &str {
        self.field(4)
    }

    /// The key id (the part after `key/`).
    pub fn key_id(&self) -> &str {
        self.field(5).trim_start_matches("key/")
    }

    /// Whether `configured` (a service's `--kms-key-id`: this ARN or its bare key id) names
    /// this key. An alias never does.
    pub fn is_named_by(&self, configured: &str) -> bool {
        configured == self.0 || configured == self.key_id()
    }
}

impl fmt::Display for KmsKeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KmsKeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KmsKeyArn({})", self.0)
    }
}

impl std::str::FromStr for KmsKeyArn {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, ArnError> {
        Self::parse(s)
    }
}

impl Serialize for KmsKeyArn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KmsKeyArn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn key_arns_parse_and_expose_their_parts() {
        let a = KmsKeyArn::parse(ARN).unwrap();
        assert_eq!(a.partition(), "aws");
        assert_eq!(a.region(), "eu-west-1");
        assert_eq!(a.account(), "111122223333");
        assert_eq!(a.key_id(), "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(a.to_string(), ARN);
        assert!(a.is_named_by(ARN));
        assert!(a.is_named_by("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(!a.is_named_by("alias/cohort-node-0"));
        assert!(!a.is_named_by("1234abcd"));
        for ok in [
            "arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/k",
        ] {
            assert!(KmsKeyArn::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn everything_but_a_key_arn_is_refused_by_name() {
        type Expect = fn(&ArnError) -> bool;
        let cases: [(&str, Expect); 11] = [
            ("", |e| matches!(e, ArnError::Length(0))),
            ("1234abcd-12ab-34cd-56ef-1234567890ab", |e| {
                matches!(e, ArnError::NotKmsArn(_))
            }),
            ("alias/cohort", |e| matches!(e, ArnError::NotKmsArn(_))),
            (
                "arn:aws:kms:eu-west-1:111122223333:alias/cohort-node-0",
                |e| matches!(e, ArnError::Alias(_)),
            ),
            ("arn:aws:s3:eu-west-1:111122223333:key/k", |e| {
                matches!(e, ArnError::NotKmsArn(_))
            }),
            ("arn:evil:kms:eu-west-1:111122223333:key/k", |e| {
                matches!(e, ArnError::Partition(_))
            }),
            ("arn:aws:kms:EU-west-1:111122223333:key/k", |e| {
                matches!(e, ArnError::Region(_))
            }),
            ("arn:aws:kms::111122223333:key/k", |e| {
                matches!(e, ArnError::Region(_))
            }),
            ("arn:aws:kms:eu-west-1:11112222333:key/k", |e| {
                matches!(e, ArnError::Account(_))
            }),
            ("arn:aws:kms:eu-west-1:111122223333:key/", |e| {
                matches!(e, ArnError::Resource(_))
            }),
            ("arn:aws:kms:eu-west-1:111122223333:key/a:b", |e| {
                matches!(e, ArnError::Resource(_))
            }),
        ];
        for (input, expected) in cases {
            let e = KmsKeyArn::parse(input).unwrap_err();
            assert!(expected(&e), "{input}: {e:?}");
        }
        // Regions that would make the enclave's KMS host name another service's host, or no
        // region at all (issue 18 review): refused by shape.
        for region in [
            "s3",
            "s3-us-west-2",
            "s3-accelerate",
            "eu-west",
            "eu--1",
            "e-west-1",
            "eu-west-1a",
            "eu-west-123",
            "fips-eu-west-1",
            "eu-west-1-fips",
            "eu.west-1",
            "s3-external-1",
            "abcde-west-1",
        ] {
            let arn = format!("arn:aws:kms:{region}:111122223333:key/k");
            assert!(
                matches!(KmsKeyArn::parse(&arn), Err(ArnError::Region(_))),
                "{region}"
            );
        }
        for region in [
            "us-east-1",
            "ap-southeast-4",
            "us-gov-west-1",
            "il-central-1",
            "us-isob-east-1",
            "eusc-de-east-1",
            "ca-west-1",
            "cn-northwest-1",
        ] {
            let arn = format!("arn:aws:kms:{region}:111122223333:key/k");
            assert!(KmsKeyArn::parse(&arn).is_ok(), "{region}");
        }
        let long = format!("{ARN}{}", "a".repeat(MAX_KMS_KEY_ARN_LEN));
        assert_eq!(KmsKeyArn::parse(&long), Err(ArnError::Length(long.len())));
    }

    #[test]
    fn serde_checks_what_it_reads() {
        let a = KmsKeyArn::parse(ARN).unwrap();
        let mut buf = Vec::new();
        ciborium::into_writer(&a, &mut buf).unwrap();
        let back: KmsKeyArn = ciborium::from_reader(buf.as_slice()).unwrap();
        assert_eq!(back, a);
        let mut alias = Vec::new();
        ciborium::into_writer("arn:aws:kms:eu-west-1:111122223333:alias/x", &mut alias).unwrap();
        assert!(ciborium::from_reader::<KmsKeyArn, _>(alias.as_slice()).is_err());
    }
}
