//! Tests of the policy evaluator: conditions, set qualifiers, context keys, principals.

use super::*;

fn pcrs(image: u8) -> BTreeMap<usize, Vec<u8>> {
    (0..3).map(|i| (i, vec![image + i as u8; 48])).collect()
}

fn enclave_policy(image: u8) -> String {
    let p = pcrs(image);
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/admin"},
             "Action": ["kms:Describe*", "kms:Get*", "kms:PutKeyPolicy"], "Resource": "*"},
            {"Sid": "EnclaveOnly", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/parent"},
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEqualsIgnoreCase": {
                "kms:RecipientAttestation:ImageSha384": hex::encode_upper(&p[&0]),
                "kms:RecipientAttestation:PCR1": hex::encode(&p[&1]),
                "kms:RecipientAttestation:PCR2": [hex::encode(&p[&2]), "00"]}}},
            {"Sid": "DenyWithoutAttestation", "Effect": "Deny", "Principal": "*",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
             "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}}
        ]
    })
    .to_string()
}

#[test]
fn attested_image_only() {
    let policy = KeyPolicy::parse(&enclave_policy(0x10)).unwrap();
    let ok = pcrs(0x10);
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:Decrypt", Some(&ok))),
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:GenerateDataKey", Some(&ok))),
        Decision::Allow
    );
    // Another image, or one PCR off: no statement allows it.
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:Decrypt", Some(&pcrs(0x20)))),
        Decision::ImplicitDeny
    );
    let mut one_off = ok.clone();
    one_off.insert(2, vec![0x99; 48]);
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:Decrypt", Some(&one_off))),
        Decision::ImplicitDeny
    );
    // No Recipient: the explicit deny, whatever else allows.
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:Decrypt", None)),
        Decision::ExplicitDeny("DenyWithoutAttestation".into())
    );
    assert_eq!(
        policy.evaluate(&RequestContext::new(
            "kms:GenerateDataKeyWithoutPlaintext",
            None
        )),
        Decision::ExplicitDeny("DenyWithoutAttestation".into())
    );
    // Other actions follow their own statements.
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:GetKeyPolicy", None)),
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate(&RequestContext::new("kms:ScheduleKeyDeletion", None)),
        Decision::ImplicitDeny
    );
}

#[test]
fn operators() {
    let ctx = RequestContext::new("kms:Decrypt", Some(&pcrs(0xaa)));
    let check = |cond: Value| {
        let p = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": "*",
            "Action": "kms:*", "Condition": cond}});
        KeyPolicy::parse(&p.to_string()).unwrap().evaluate(&ctx) == Decision::Allow
    };
    let pcr0 = hex::encode([0xaa; 48]);
    assert!(check(
        serde_json::json!({"StringEquals": {"kms:RecipientAttestation:PCR0": pcr0}})
    ));
    assert!(!check(
        serde_json::json!({"StringEquals": {"kms:RecipientAttestation:PCR0": pcr0.to_uppercase()}})
    ));
    assert!(check(
        serde_json::json!({"StringLike": {"kms:RecipientAttestation:PCR0": "aaaa*"}})
    ));
    assert!(check(
        serde_json::json!({"StringNotEquals": {"kms:RecipientAttestation:PCR0": "00"}})
    ));
    // A key the request lacks fails a positive string operator and satisfies a negated one
    // (so "StringNotEquals PCR0 = zeros" alone would also admit callers without a document).
    assert!(!check(
        serde_json::json!({"StringEquals": {"kms:RecipientAttestation:PCR8": "00"}})
    ));
    assert!(check(
        serde_json::json!({"StringNotEquals": {"kms:RecipientAttestation:PCR8": "00"}})
    ));
    let bare = RequestContext::new("kms:Decrypt", None);
    let p = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": "*",
        "Action": "kms:*",
        "Condition": {"StringNotEquals": {"kms:RecipientAttestation:PCR0": "00"}}}});
    assert_eq!(
        KeyPolicy::parse(&p.to_string()).unwrap().evaluate(&bare),
        Decision::Allow
    );
    assert!(check(
        serde_json::json!({"Null": {"kms:RecipientAttestation:PCR8": "true"}})
    ));
    assert!(!check(
        serde_json::json!({"Null": {"kms:RecipientAttestation:PCR0": "true"}})
    ));
    assert!(like(
        "kms:GenerateDataKey*",
        "kms:generatedatakeypair",
        true
    ));
    assert!(!like("kms:Get*", "kms:Decrypt", true));
}

/// Issue 18: a Cohort node policy's context conditions (as `cohort kms policy` writes
/// them), on an attested caller.
#[test]
fn encryption_context_conditions() {
    let policy = serde_json::json!({"Statement": [
        {"Sid": "EnclaveUse", "Effect": "Allow", "Principal": "*",
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
         "Condition": {
            "StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": hex::encode([0x10; 48])},
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys":
                ["cohort:blob", "cohort:cluster", "cohort:id", "cohort:node"]},
            "StringEquals": {"kms:EncryptionContext:cohort:blob": ["ecdsa-share", "node-key"]},
            "Null": {"kms:EncryptionContext:cohort:id": "false"}}}
    ]});
    let policy = KeyPolicy::parse(&policy.to_string()).unwrap();
    let pcrs = pcrs(0x10);
    let ask = |pairs: &[(&str, &str)]| {
        let context = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let request = RequestContext::new("kms:Decrypt", Some(&pcrs))
            .with_encryption_context(&context)
            .unwrap();
        policy.evaluate(&request)
    };
    let blob = ("cohort:blob", "ecdsa-share");
    let id = ("cohort:id", "k1");
    assert_eq!(ask(&[blob, id]), Decision::Allow);
    assert_eq!(
        ask(&[blob, id, ("cohort:node", "aa"), ("cohort:cluster", "c1")]),
        Decision::Allow
    );
    // Context values compare with case.
    assert_eq!(
        policy.evaluate(
            &RequestContext::new("kms:Decrypt", Some(&pcrs))
                .with_encryption_context(&BTreeMap::from([
                    ("cohort:blob".to_string(), "ECDSA-SHARE".to_string()),
                    ("cohort:id".to_string(), "k1".to_string()),
                ]))
                .unwrap()
        ),
        Decision::ImplicitDeny
    );
    for refused in [
        vec![],
        vec![blob],
        vec![id],
        vec![("cohort:blob", "backup"), id],
        vec![blob, id, ("purpose", "x")],
        // `kms:EncryptionContextKeys` compares with case: another key.
        vec![blob, id, ("Cohort:Node", "aa")],
    ] {
        assert_eq!(ask(&refused), Decision::ImplicitDeny, "{refused:?}");
    }
    // Keys that differ only in case would share a condition key: refused, not guessed.
    let twins = BTreeMap::from([
        ("cohort:blob".to_string(), "ecdsa-share".to_string()),
        ("Cohort:Blob".to_string(), "backup".to_string()),
    ]);
    assert!(
        RequestContext::new("kms:Decrypt", None)
            .with_encryption_context(&twins)
            .is_err()
    );
}

/// IAM's set qualifiers: `ForAllValues` holds for every value (and for none), `ForAnyValue`
/// for at least one; a negated operator is applied to each value.
#[test]
fn set_qualifiers() {
    let check = |cond: Value, pairs: &[&str]| {
        let p = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": "*",
            "Action": "kms:*", "Condition": cond}});
        let context = pairs
            .iter()
            .map(|k| (k.to_string(), "v".to_string()))
            .collect();
        let request = RequestContext::new("kms:Decrypt", None)
            .with_encryption_context(&context)
            .unwrap();
        KeyPolicy::parse(&p.to_string()).unwrap().evaluate(&request) == Decision::Allow
    };
    let keys = |op: &str| serde_json::json!({op: {"kms:EncryptionContextKeys": ["a", "b"]}});
    assert!(check(keys("ForAllValues:StringEquals"), &["a", "b"]));
    assert!(check(keys("ForAllValues:StringEquals"), &[]));
    assert!(!check(keys("ForAllValues:StringEquals"), &["a", "c"]));
    assert!(check(keys("ForAnyValue:StringEquals"), &["a", "c"]));
    assert!(!check(keys("ForAnyValue:StringEquals"), &["c"]));
    assert!(!check(keys("ForAnyValue:StringEquals"), &[]));
    assert!(check(keys("ForAllValues:StringNotEquals"), &["c", "d"]));
    assert!(!check(keys("ForAllValues:StringNotEquals"), &["a", "d"]));
    assert!(check(keys("ForAnyValue:StringNotEquals"), &["a", "d"]));
    assert!(!check(keys("ForAnyValue:StringLike"), &["xb"]));
    assert!(check(
        serde_json::json!({"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "x*"}}),
        &["a", "xb"]
    ));
}

#[test]
fn unsupported_elements_are_refused() {
    for (bad, why) in [
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "kms:Decrypt"}]}"#,
            "NotAction",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {"StringEqualsIfExists": {"a": "b"}}}]}"#,
            "StringEqualsIfExists",
        ),
        (
            r#"{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}"#,
            "Effect",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Action": "kms:*"}]}"#,
            "Principal",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {"Null": {"a": "maybe"}}}]}"#,
            "Null",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {"StringEquals": {"kms:EncryptionContextKeys": "a"}}}]}"#,
            "multivalued",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContext:a": "b"}}}]}"#,
            "single-valued",
        ),
        (
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {"ForAllValues:Null": {"kms:EncryptionContextKeys": "true"}}}]}"#,
            "ForAllValues:Null",
        ),
        ("[]", "object"),
        ("not json", "JSON"),
    ] {
        let e = KeyPolicy::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

/// A statement applies to the callers its `Principal` names; an unnamed caller (a stand-in
/// started without `--principal`) to every statement.
#[test]
fn principals() {
    let policy = KeyPolicy::parse(&enclave_policy(0x10)).unwrap();
    let admin = Caller::Principal("arn:aws:iam::1:role/admin".into());
    let parent = Caller::Principal("arn:aws:iam::1:role/parent".into());
    let ok = pcrs(0x10);
    let ask = |action: &str, caller: &Caller, pcrs: Option<&BTreeMap<usize, Vec<u8>>>| {
        policy.evaluate(&RequestContext::new(action, pcrs).by(caller.clone()))
    };
    assert_eq!(ask("kms:Decrypt", &parent, Some(&ok)), Decision::Allow);
    assert_eq!(
        ask("kms:Decrypt", &admin, Some(&ok)),
        Decision::ImplicitDeny
    );
    assert_eq!(ask("kms:GetKeyPolicy", &admin, None), Decision::Allow);
    assert_eq!(
        ask("kms:GetKeyPolicy", &parent, None),
        Decision::ImplicitDeny
    );
    assert_eq!(
        ask("kms:GetKeyPolicy", &Caller::Unnamed, None),
        Decision::Allow
    );
    // "*" names everyone: the deny holds for the admin too.
    assert_eq!(
        ask("kms:Decrypt", &admin, None),
        Decision::ExplicitDeny("DenyWithoutAttestation".into())
    );
    // An account root names every caller of its account, not another account's.
    let root = |who: &str| {
        let p = serde_json::json!({"Statement": {"Effect": "Allow",
            "Principal": {"AWS": who}, "Action": "kms:*"}});
        KeyPolicy::parse(&p.to_string()).unwrap()
    };
    let ctx = RequestContext::new("kms:CreateGrant", None).by(admin.clone());
    assert_eq!(root("arn:aws:iam::1:root").evaluate(&ctx), Decision::Allow);
    assert_eq!(root("1").evaluate(&ctx), Decision::Allow);
    assert_eq!(
        root("arn:aws:iam::2:root").evaluate(&ctx),
        Decision::ImplicitDeny
    );
    assert_eq!(
        root("arn:aws:iam::1:role/other").evaluate(&ctx),
        Decision::ImplicitDeny
    );
    let service = serde_json::json!({"Statement": {"Effect": "Allow",
        "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*"}});
    assert_eq!(
        KeyPolicy::parse(&service.to_string())
            .unwrap()
            .evaluate(&ctx),
        Decision::ImplicitDeny
    );
    for bad in [r#""someone""#, r#"{"Unknown": "x"}"#, "3"] {
        let p = format!(
            r#"{{"Statement": {{"Effect": "Allow", "Principal": {bad}, "Action": "kms:*"}}}}"#
        );
        assert!(
            KeyPolicy::parse(&p).unwrap_err().contains("Principal"),
            "{p}"
        );
    }
}
