//! The enclave images the cluster accepts over time (issue 20, image rotation):
//! `POST /v1/cluster/images`, an image change as the admins sign it, and the image set
//! `GET /v1/cluster` shows. The answer to the route is an [`super::AdminsSetResult`] (the
//! image version the change makes, and which nodes applied it).

use protocol::genesis::Image;
use protocol::images::AcceptImages;
use serde::{Deserialize, Serialize};

use super::hex::{ClusterHex, Hex, buf};
use super::requests::{ApprovedJson, ImageJson, Wire};
use super::responses::NodeReceipt;

impl Wire for ImageJson {
    type Wire = Image;
    fn to_wire(&self) -> Image {
        Image {
            pcr0: buf(&self.pcr0),
            pcr1: buf(&self.pcr1),
            pcr2: buf(&self.pcr2),
        }
    }
    fn from_wire(i: &Image) -> Self {
        Self {
            pcr0: Hex::from(&i.pcr0),
            pcr1: Hex::from(&i.pcr1),
            pcr2: Hex::from(&i.pcr2),
        }
    }
}

/// A change of the set of enclave images the cluster accepts, as the admins in force sign it
/// (`protocol::images::AcceptImages`): the body of `POST /v1/cluster/images`, with its
/// approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptImagesJson {
    /// Request format version (1).
    pub v: u8,
    /// The cluster id.
    pub cluster: ClusterHex,
    /// The image version it replaces (the cluster's current one; 0: the genesis' image alone).
    /// The change makes version `version + 1`.
    pub version: u32,
    /// The images accepted from then on (1 to `protocol::images::MAX_IMAGES`, distinct, each
    /// PCR 48 bytes).
    pub images: Vec<ImageJson>,
    /// 16 random bytes, single use.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// The admin version the approvals were given under: the cluster's current one
    /// (`GET /v1/cluster`; 0, which may be left out, until the admins are first replaced).
    /// The coordinator and every enclave refuse another (`stale_admins`).
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub admins: u32,
}

impl Wire for AcceptImagesJson {
    type Wire = AcceptImages;
    fn to_wire(&self) -> AcceptImages {
        AcceptImages {
            v: self.v,
            cluster: self.cluster.0,
            version: self.version,
            images: self.images.iter().map(ImageJson::to_wire).collect(),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
            admins: self.admins,
        }
    }
    fn from_wire(r: &AcceptImages) -> Self {
        Self {
            v: r.v,
            cluster: ClusterHex(r.cluster),
            version: r.version,
            images: r.images.iter().map(ImageJson::from_wire).collect(),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
            admins: r.admins,
        }
    }
}

/// One recorded image change, as `GET /v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageChange {
    /// The image version it made.
    pub version: u32,
    /// The approved change.
    pub request: ApprovedJson<AcceptImagesJson>,
    /// SHA-256 of its canonical bytes.
    pub request_sha256: Hex,
    /// The statements of the nodes that applied it, by node index (each over
    /// `protocol::images::images_set_message`).
    pub statements: Vec<NodeReceipt>,
    /// When it was recorded (Unix seconds).
    pub recorded: u64,
}

/// The set of enclave images the cluster accepts, and how it came to be: the genesis' image
/// alone (version 0), replaced by each recorded change in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesStatus {
    /// The image version in force: an image change names it (`version`).
    pub version: u32,
    /// Its images: the ones nodes admit as peers and may run on.
    pub images: Vec<ImageJson>,
    /// Every change since the genesis, in version order.
    pub changes: Vec<ImageChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(b: u8) -> ImageJson {
        ImageJson {
            pcr0: Hex(vec![b; 48]),
            pcr1: Hex(vec![1; 48]),
            pcr2: Hex(vec![b; 48]),
        }
    }

    #[test]
    fn a_change_travels_as_hex_and_back_and_names_the_admin_version_only_past_0() {
        let mut json = AcceptImagesJson {
            v: protocol::images::ACCEPT_IMAGES_VERSION,
            cluster: ClusterHex(protocol::genesis::ClusterId([7; 32])),
            version: 2,
            images: vec![image(3), image(4)],
            request_id: Hex(vec![9; 16]),
            created: 1_000,
            expiry: 1_300,
            admins: 0,
        };
        let wire = json.to_wire();
        assert_eq!(wire.check(), Ok(()));
        assert_eq!(wire.new_version(), 3);
        assert_eq!(wire.images[1].pcr0.to_vec(), vec![4u8; 48]);
        assert_eq!(AcceptImagesJson::from_wire(&wire), json);
        let text = serde_json::to_string(&json).expect("serializes");
        assert!(text.contains(&"03".repeat(48)), "{text}");
        assert!(!text.contains("admins"), "{text}");
        let back: AcceptImagesJson = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, json);
        let extra = text.replacen('{', "{\"x\":1,", 1);
        assert!(serde_json::from_str::<AcceptImagesJson>(&extra).is_err());
        json.admins = 5;
        let text = serde_json::to_string(&json).expect("serializes");
        assert!(text.contains("\"admins\":5"), "{text}");
        assert_eq!(json.to_wire().admins, 5);
        assert_ne!(json.to_wire().hash(), wire.hash());
    }
}
