//! The enclave images a cluster accepts (issue 20, rolling image rotation; `docs/lifecycle.md`).
//!
//! The image a genesis names is image version 0's one-element set. Each change is an
//! [`AcceptImages`] request approved by the admins in force, naming the image version it
//! replaces and the whole new set: enclaves admit peers of any image in the set, and a node
//! runs only on an image in it. A rotation accepts the old and new images together, the nodes
//! are restarted one at a time on the new one, and another change accepts the new one alone.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::genesis::{ClusterId, Image, PCR_LEN};
use crate::policy::{Canonical, REQUEST_ID_LEN};

/// Version of [`AcceptImages`].
pub const ACCEPT_IMAGES_VERSION: u8 = 1;

/// The most images a set holds (a rotation needs two).
pub const MAX_IMAGES: usize = 4;

/// Domain tag of a node's statement that it applied an image change ([`images_set_message`]).
pub const IMAGES_SET_DOMAIN: &[u8] = b"cohort/images-set/v1\0";

/// Replace the set of enclave images the cluster accepts, approved by the admins in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptImages {
    /// [`ACCEPT_IMAGES_VERSION`].
    pub v: u8,
    /// The cluster.
    pub cluster: ClusterId,
    /// The image version this change replaces (0: the genesis' image alone). The new set is
    /// version `version + 1`.
    pub version: u32,
    /// The images accepted from then on: 1 to [`MAX_IMAGES`], distinct, each PCR 48 bytes.
    pub images: Vec<Image>,
    /// Request id (16 bytes).
    pub request_id: ByteBuf,
    /// Valid from (Unix seconds).
    pub created: u64,
    /// Valid until (Unix seconds).
    pub expiry: u64,
    /// The admin version its approvals were given under (as every admin request).
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub admins: u32,
}

impl Canonical for AcceptImages {
    const DOMAIN: &'static [u8] = b"cohort/accept-images/v1\0";
}

/// Why an [`AcceptImages`] is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImagesError {
    /// Another request version.
    #[error("accept-images request version {0} (this build reads {ACCEPT_IMAGES_VERSION})")]
    Version(u8),
    /// The request id is not [`REQUEST_ID_LEN`] bytes.
    #[error("request id is {0} bytes, not {REQUEST_ID_LEN}")]
    RequestId(usize),
    /// The version it replaces is the last one there can be.
    #[error("image version {0} cannot be replaced (no version after it)")]
    LastVersion(u32),
    /// No image, or more than [`MAX_IMAGES`].
    #[error("{0} images; a set holds 1 to {MAX_IMAGES}")]
    Count(usize),
    /// An image's PCR is not 48 bytes.
    #[error("image {image}: PCR{pcr} is not {PCR_LEN} bytes")]
    Pcr {
        /// Its position.
        image: usize,
        /// 0, 1 or 2.
        pcr: u8,
    },
    /// An image with all-zero PCR0, PCR1 and PCR2: what any enclave run in debug mode
    /// reports, whatever its code.
    #[error("image {0} is all zero: a debug-mode enclave's measurements, never an image")]
    Debug(usize),
    /// One image listed twice.
    #[error("images {first} and {second} are the same")]
    Duplicate {
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
}

impl AcceptImages {
    /// Checks the shape. Approvals and the window are checked separately.
    pub fn check(&self) -> Result<(), ImagesError> {
        if self.v != ACCEPT_IMAGES_VERSION {
            return Err(ImagesError::Version(self.v));
        }
        if self.request_id.len() != REQUEST_ID_LEN {
            return Err(ImagesError::RequestId(self.request_id.len()));
        }
        if self.version == u32::MAX {
            return Err(ImagesError::LastVersion(self.version));
        }
        if self.images.is_empty() || self.images.len() > MAX_IMAGES {
            return Err(ImagesError::Count(self.images.len()));
        }
        for (image, i) in self.images.iter().enumerate() {
            let pcrs = [&i.pcr0, &i.pcr1, &i.pcr2];
            if let Some(pcr) = pcrs.iter().position(|p| p.len() != PCR_LEN) {
                return Err(ImagesError::Pcr {
                    image,
                    pcr: pcr as u8,
                });
            }
            if pcrs.iter().all(|p| p.iter().all(|b| *b == 0)) {
                return Err(ImagesError::Debug(image));
            }
            if let Some(first) = self.images[..image].iter().position(|o| o == i) {
                return Err(ImagesError::Duplicate {
                    first,
                    second: image,
                });
            }
        }
        Ok(())
    }

    /// The image version this change makes.
    pub fn new_version(&self) -> u32 {
        self.version.saturating_add(1)
    }

    /// SHA-256 of the canonical bytes: what every node's statement names.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

/// What node `node` signs with its node key once it applied the image change whose SHA-256 is
/// `request`, making image version `version` its current one:
///
/// `IMAGES_SET_DOMAIN || cluster id || u16 node || u32 version || request`
pub fn images_set_message(
    cluster: &ClusterId,
    node: u16,
    version: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    crate::admins::change_statement(IMAGES_SET_DOMAIN, cluster, node, version, request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(b: u8) -> Image {
        Image {
            pcr0: ByteBuf::from(vec![b; 48]),
            pcr1: ByteBuf::from(vec![1; 48]),
            pcr2: ByteBuf::from(vec![b; 48]),
        }
    }

    fn request() -> AcceptImages {
        AcceptImages {
            v: ACCEPT_IMAGES_VERSION,
            cluster: ClusterId([7; 32]),
            version: 0,
            images: vec![image(1), image(2)],
            request_id: ByteBuf::from(vec![3; 16]),
            created: 1_000,
            expiry: 1_300,
            admins: 0,
        }
    }

    #[test]
    fn malformed_sets_are_refused_by_name() {
        assert_eq!(request().check(), Ok(()));
        type Change = fn(&mut AcceptImages);
        let cases: Vec<(Change, ImagesError)> = vec![
            (|r| r.v = 2, ImagesError::Version(2)),
            (|r| r.request_id.truncate(3), ImagesError::RequestId(3)),
            (|r| r.version = u32::MAX, ImagesError::LastVersion(u32::MAX)),
            (|r| r.images.clear(), ImagesError::Count(0)),
            (|r| r.images = vec![image(1); 5], ImagesError::Count(5)),
            (
                |r| r.images[1].pcr2.truncate(47),
                ImagesError::Pcr { image: 1, pcr: 2 },
            ),
            (
                |r| {
                    r.images[1] = Image {
                        pcr0: ByteBuf::from(vec![0; 48]),
                        pcr1: ByteBuf::from(vec![0; 48]),
                        pcr2: ByteBuf::from(vec![0; 48]),
                    }
                },
                ImagesError::Debug(1),
            ),
            (
                |r| r.images[1] = image(1),
                ImagesError::Duplicate {
                    first: 0,
                    second: 1,
                },
            ),
        ];
        for (change, expected) in cases {
            let mut r = request();
            change(&mut r);
            assert_eq!(r.check(), Err(expected));
        }
    }

    #[test]
    fn every_field_is_in_the_hash_and_the_admin_version_is_left_out_at_0() {
        let base = request();
        let changes: [Change; 7] = [
            |r| r.cluster = ClusterId([8; 32]),
            |r| r.version = 1,
            |r| r.images.swap(0, 1),
            |r| r.request_id[0] = 9,
            |r| r.created += 1,
            |r| r.expiry += 1,
            |r| r.admins = 1,
        ];
        type Change = fn(&mut AcceptImages);
        for change in changes {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(r.hash(), base.hash());
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&base, &mut bytes).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"admins"));
        let m = images_set_message(&base.cluster, 1, 1, &base.hash());
        assert!(m.starts_with(IMAGES_SET_DOMAIN));
        assert_ne!(m, images_set_message(&base.cluster, 2, 1, &base.hash()));
    }
}
