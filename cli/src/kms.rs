//! KMS key policies from measured PCRs, and the key administration `cohort sim up` does on the
//! local KMS stand-in.
//!
//! Each node has its own KMS key. Its policy, in the JSON form Terraform passes to
//! `aws_kms_key.policy`:
//!
//! * `KeyAdministration`: the admin principal manages the key but cannot use it;
//! * `EnclaveUse` (one statement per allowed image): the node's parent role may call
//!   `GenerateDataKey` and `Decrypt` only with a Recipient attestation document whose
//!   `ImageSha384` (PCR0), PCR0, PCR1 and PCR2 (and PCR8 when the image is signed) match, and,
//!   with `pin_pcr3`, whose PCR3 is that of the parent role (an enclave on an instance with that
//!   role: `attestation::parent::pcr3_of_role`), and whose encryption context is one the enclave
//!   sends: Cohort's keys only, a known blob kind and a key id
//!   ([`encryption_context_conditions`]);
//! * `DenyWithoutAttestation`: anyone calling `Decrypt` or `GenerateDataKey*` without an
//!   attestation document is denied, whatever else allows it;
//! * `DenyReEncrypt`: `ReEncrypt*` (which takes no Recipient) is denied to everyone.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The account id of the local stand-in's ARNs.
pub const SIM_ACCOUNT: &str = "000000000000";

/// One image's measurements, lowercase hex by PCR index (0, 1, 2 and optionally 8).
pub type Measurements = BTreeMap<usize, String>;

/// Who the policy names.
#[derive(Debug, Clone)]
pub struct PolicyParams {
    /// The node's index, for the policy id: from 0, as the coordinators, Terraform and the
    /// simulated cluster number nodes.
    pub node: usize,
    /// The images whose enclaves may use the key (several during an image rotation).
    pub images: Vec<Measurements>,
    /// The IAM role of the node's parent instance.
    pub parent_role: String,
    /// Whether the key answers only enclaves whose PCR3 is `parent_role`'s.
    pub pin_pcr3: bool,
    /// The principal that administers the key.
    pub admin: String,
}

impl PolicyParams {
    /// Parameters for node `node` of a simulated cluster (the stand-in has no IAM; the ARNs
    /// only keep the document in its production shape).
    pub fn simulated(node: usize, image: Measurements) -> Self {
        Self {
            node,
            images: vec![image],
            parent_role: sim_parent_role(node),
            pin_pcr3: true,
            admin: format!("arn:aws:iam::{SIM_ACCOUNT}:role/cohort-kms-admin"),
        }
    }
}

/// The parent role of node `node` (numbered from 0) of a simulated cluster: its simulated enclave
/// reports this role's PCR3, and its key policy pins it.
pub fn sim_parent_role(node: usize) -> String {
    format!("arn:aws:iam::{SIM_ACCOUNT}:role/cohort-node-{node}-parent")
}

/// PCR3 of an enclave on an instance with role `role_arn`, lowercase hex (what the key policy
/// and `cohort genesis prepare --pcr3` take).
pub fn pcr3_hex(role_arn: &str) -> String {
    hex::encode(attestation::parent::pcr3_of_role(role_arn))
}

/// What the key administrator may do with a node's key, listed one by one (issue 23): manage it,
/// alias, tag, rotate, disable, schedule its deletion and change its policy (every policy change
/// is alarmed), never use it and never grant its use (`kms:CreateGrant`, which `kms:Create*`
/// would include: a grant to any principal with a document of any image would open every
/// sealed blob). Terraform's `modules/kms_key` lists the same actions.
pub const KEY_ADMINISTRATION: [&str; 22] = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
];

/// The key policy of a node.
///
/// After the administration statement and one `EnclaveUse` statement per image, four denies
/// that hold whatever else allows (a grant, a statement added later): `Decrypt` and
/// `GenerateDataKey*` without an attestation document (`DenyWithoutAttestation`) or with one
/// whose `ImageSha384` is not an allowed image's PCR0 (`DenyOtherImages`: a negated operator
/// also matches a call without the key); `ReEncrypt*` (`DenyReEncrypt`); and `CreateGrant` to
/// everyone (`DenyGrants`).
pub fn key_policy(params: &PolicyParams) -> anyhow::Result<Value> {
    if params.images.is_empty() {
        bail!("a key policy needs the measurements of at least one image");
    }
    let mut statements = vec![json!({
        "Sid": "KeyAdministration",
        "Effect": "Allow",
        "Principal": {"AWS": params.admin},
        "Action": KEY_ADMINISTRATION,
        "Resource": "*"
    })];
    for (n, image) in params.images.iter().enumerate() {
        let mut condition = serde_json::Map::new();
        for i in [0usize, 1, 2] {
            if !image.contains_key(&i) {
                bail!("image {n}: PCR{i} is missing");
            }
        }
        for (i, value) in image {
            if ![0, 1, 2, 8].contains(i) {
                bail!("image {n}: PCR{i} is not an image measurement (0, 1, 2 or 8)");
            }
            let bytes = hex::decode(value).with_context(|| format!("image {n}: PCR{i}"))?;
            if bytes.len() != 48 || bytes.iter().all(|b| *b == 0) {
                bail!("image {n}: PCR{i} is not a 48-byte SHA-384 measurement of a release image");
            }
            condition.insert(
                format!("kms:RecipientAttestation:PCR{i}"),
                json!(value.to_ascii_lowercase()),
            );
        }
        condition.insert(
            "kms:RecipientAttestation:ImageSha384".into(),
            json!(image[&0].to_ascii_lowercase()),
        );
        if params.pin_pcr3 {
            condition.insert(
                "kms:RecipientAttestation:PCR3".into(),
                json!(pcr3_hex(&params.parent_role)),
            );
        }
        let mut conditions = encryption_context_conditions();
        conditions.insert("StringEqualsIgnoreCase".into(), Value::Object(condition));
        statements.push(json!({
            "Sid": if params.images.len() == 1 { "EnclaveUse".to_string() } else { format!("EnclaveUseImage{n}") },
            "Effect": "Allow",
            "Principal": {"AWS": params.parent_role},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
            "Condition": conditions
        }));
    }
    statements.push(json!({
        "Sid": "DenyWithoutAttestation",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}
    }));
    let allowed: Vec<String> = params
        .images
        .iter()
        .map(|image| image[&0].to_ascii_lowercase())
        .collect();
    statements.push(json!({
        "Sid": "DenyOtherImages",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": allowed}}
    }));
    statements.push(json!({
        "Sid": "DenyReEncrypt",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:ReEncrypt*",
        "Resource": "*"
    }));
    statements.push(json!({
        "Sid": "DenyGrants",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:CreateGrant",
        "Resource": "*"
    }));
    Ok(json!({
        "Version": "2012-10-17",
        "Id": format!("cohort-node-{}", params.node),
        "Statement": statements
    }))
}

/// The conditions every `EnclaveUse` statement puts on the request's encryption context
/// (`protocol::parent::kms_http::context`, what the enclave sends): only Cohort's context keys
/// (`ForAllValues:StringEquals` on `kms:EncryptionContextKeys`), a blob kind from the enclave's
/// list (`StringEquals` on `kms:EncryptionContext:cohort:blob`, which also requires the key) and
/// a key id (`Null` false on `kms:EncryptionContext:cohort:id`). `ForAllValues` alone would also
/// pass a call without any context; the other two make the context required. The node key and
/// cluster id are not known when the policy is written (the enclave makes its node key at
/// enrollment, the cluster id comes from genesis), so only their keys are allowed.
pub fn encryption_context_conditions() -> serde_json::Map<String, Value> {
    use protocol::parent::kms_http::context::{BLOB, BLOB_KINDS, ID, KEYS};
    let mut conditions = serde_json::Map::new();
    conditions.insert(
        "ForAllValues:StringEquals".into(),
        json!({"kms:EncryptionContextKeys": KEYS}),
    );
    conditions.insert(
        "StringEquals".into(),
        json!({format!("kms:EncryptionContext:{BLOB}"): BLOB_KINDS}),
    );
    conditions.insert(
        "Null".into(),
        json!({format!("kms:EncryptionContext:{ID}"): "false"}),
    );
    conditions
}

/// Reads measurements from a JSON file: `{"PCR0": "..", "PCR1": "..", "PCR2": ..}`, at the top
/// level or under `Measurements` (the form `nitro-cli describe-eif` and eif-build print), by
/// the same reader the proxies' and the coordinator's `--measurements` use.
pub fn read_measurements(path: &Path) -> anyhow::Result<Measurements> {
    let pcrs = attestation::read_measurements(path).map_err(anyhow::Error::msg)?;
    Ok(pcrs
        .into_iter()
        .map(|(index, value)| (index, hex::encode(value)))
        .collect())
}

/// A KMS client for the local stand-in at `endpoint` (static credentials; the stand-in checks
/// no signature).
pub fn sim_client(endpoint: &str) -> aws_sdk_kms::Client {
    sim_client_as(endpoint, "cohort-sim")
}

/// A client of the local stand-in at `endpoint` signing with the access key id
/// `access_key_id` (a stand-in started with `--principal ACCESS_KEY_ID=ARN` takes it for that
/// principal).
pub fn sim_client_as(endpoint: &str, access_key_id: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            access_key_id,
            "cohort-sim",
            None,
            None,
            "cohort-sim",
        ))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

fn sdk(e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    anyhow::anyhow!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(e)
    )
}

/// Awaits a KMS call, its error rendered with its whole context.
async fn call<T, E>(sent: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    sent.await.map_err(sdk)
}

/// Creates a key with `policy`; returns its id.
pub async fn create_key(
    client: &aws_sdk_kms::Client,
    description: &str,
    policy: &Value,
) -> anyhow::Result<String> {
    let request = client.create_key().description(description);
    let out = call(request.policy(policy.to_string()).send()).await?;
    out.key_metadata()
        .map(|m| m.key_id().to_string())
        .context("CreateKey answered without key metadata")
}

/// The full ARN of the key `key_id` names (what an enclave names at enrollment, ADR 0013).
pub async fn key_arn(
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> anyhow::Result<protocol::KmsKeyArn> {
    let out = call(client.describe_key().key_id(key_id).send()).await?;
    let arn = out
        .key_metadata()
        .and_then(|m| m.arn())
        .context("DescribeKey answered without the key's ARN")?;
    protocol::KmsKeyArn::parse(arn).with_context(|| format!("KMS answered an ARN {arn}"))
}

/// Replaces a key's policy.
pub async fn put_policy(
    client: &aws_sdk_kms::Client,
    key_id: &str,
    policy: &Value,
) -> anyhow::Result<()> {
    let request = client.put_key_policy().key_id(key_id);
    call(request.policy(policy.to_string()).send()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(b: u8) -> Measurements {
        (0..3)
            .map(|i| (i, hex::encode([b + i as u8; 48])))
            .collect()
    }

    #[test]
    fn policy_shape() {
        let p = key_policy(&PolicyParams::simulated(2, image(0x10))).unwrap();
        assert_eq!(p["Id"], "cohort-node-2");
        let st = p["Statement"].as_array().unwrap();
        let sids: Vec<&str> = st.iter().map(|s| s["Sid"].as_str().unwrap()).collect();
        assert_eq!(
            sids,
            [
                "KeyAdministration",
                "EnclaveUse",
                "DenyWithoutAttestation",
                "DenyOtherImages",
                "DenyReEncrypt",
                "DenyGrants"
            ]
        );
        let cond = &st[1]["Condition"]["StringEqualsIgnoreCase"];
        assert_eq!(
            cond["kms:RecipientAttestation:ImageSha384"],
            hex::encode([0x10; 48])
        );
        assert_eq!(
            cond["kms:RecipientAttestation:PCR2"],
            hex::encode([0x12; 48])
        );
        // Only with the enclave's encryption context: its keys only, a known kind, a key id.
        let cond = &st[1]["Condition"];
        assert_eq!(
            cond["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"],
            json!(["cohort:blob", "cohort:cluster", "cohort:id", "cohort:node"])
        );
        assert_eq!(
            cond["StringEquals"]["kms:EncryptionContext:cohort:blob"],
            json!([
                "aux-info",
                "ecdsa-share",
                "eddsa-share",
                "genesis",
                "node-key"
            ])
        );
        assert_eq!(cond["Null"]["kms:EncryptionContext:cohort:id"], "false");
        // The admin manages the key but may not use it, nor grant its use: every action is
        // named (no wildcard, which would take in kms:CreateGrant).
        let admin = st[0]["Action"].as_array().unwrap();
        assert!(admin.iter().all(|a| {
            let a = a.as_str().unwrap();
            !a.contains('*') && a != "kms:Decrypt" && a != "kms:CreateGrant"
        }));
        // Whatever else allows: no use by another image (nor without a document), no grants.
        assert_eq!(st[3]["Effect"], "Deny");
        assert_eq!(
            st[3]["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:ImageSha384"],
            json!([hex::encode([0x10; 48])])
        );
        assert_eq!(st[5]["Effect"], "Deny");
        assert_eq!(st[5]["Action"], "kms:CreateGrant");
        assert_eq!(st[5]["Principal"], json!({"AWS": "*"}));
        // During a rotation both images' PCR0 are allowed, each with its own statement.
        let mut two = PolicyParams::simulated(2, image(0x10));
        two.images.push(image(0x20));
        let p = key_policy(&two).unwrap();
        assert_eq!(
            p["Statement"][4]["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:ImageSha384"],
            json!([hex::encode([0x10; 48]), hex::encode([0x20; 48])])
        );
    }

    #[test]
    fn bad_measurements_are_refused() {
        let mut missing = image(1);
        missing.remove(&1);
        let mut zero = image(1);
        zero.insert(0, hex::encode([0; 48]));
        let mut short = image(1);
        short.insert(2, "abcd".into());
        let mut foreign = image(1);
        foreign.insert(4, hex::encode([9; 48]));
        for (bad, why) in [
            (missing, "PCR1 is missing"),
            (zero, "release image"),
            (short, "48-byte"),
            (foreign, "PCR4"),
        ] {
            let e = key_policy(&PolicyParams::simulated(1, bad)).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let mut none = PolicyParams::simulated(1, image(1));
        none.images.clear();
        assert!(key_policy(&none).is_err());
    }
}
