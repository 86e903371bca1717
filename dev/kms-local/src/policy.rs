//! Key policies: the subset of the IAM policy language KMS key policies use for enclaves,
//! evaluated with the semantics of the `kms:RecipientAttestation:*` condition keys.
//!
//! A policy is `{"Version", "Statement": [ ... ]}`; each statement has `Effect` (`Allow` or
//! `Deny`), `Principal`, `Action` (a string or list; `kms:*` and trailing-`*` patterns), `Resource`
//! and an optional `Condition` of operators over keys. Evaluation as in IAM: an explicit `Deny`
//! wins, otherwise an `Allow` is needed, otherwise the request is denied. Within a condition
//! block every operator and every key must match (and); the values listed for one key are
//! alternatives (or).
//!
//! Operators: `StringEquals`, `StringEqualsIgnoreCase`, `StringNotEquals`,
//! `StringNotEqualsIgnoreCase`, `StringLike` and `Null`. As in IAM, a positive string operator
//! on a key the request does not carry does not match, a negated one (`StringNotEquals…`) does;
//! `Null: "true"` matches exactly when the key is absent. The string operators also take IAM's
//! set qualifiers for multivalued keys: `ForAllValues:` matches when every value the request
//! carries matches (so also when it carries none), `ForAnyValue:` when at least one does.
//!
//! Condition keys: `kms:RecipientAttestation:ImageSha384` (the document's PCR0) and
//! `kms:RecipientAttestation:PCR0` .. `PCR31`, as lowercase hex, present only when the request
//! carries a verified Recipient attestation document; `kms:EncryptionContext:<key>`, the value
//! of each pair of the request's encryption context (the key name, like every condition key
//! name, compared without regard to case; the value with it); and `kms:EncryptionContextKeys`,
//! the multivalued set of the context's keys (compared as the operator says). A multivalued key
//! without a set qualifier, or a qualifier on a single-valued key, is refused (IAM warns against
//! both: the result on a missing key is easy to get wrong). Anything else in a policy — another
//! operator, an `…IfExists` suffix, `NotAction`, `NotPrincipal` — is refused when the policy is
//! stored, so nothing is silently ignored.
//!
//! Principals: a statement applies to the callers its `Principal` names — `"*"` or `{"AWS":
//! "*"}` everyone, `{"AWS": ARN or [ARN…]}` a caller with exactly that ARN, and an account's root
//! (`arn:aws:iam::ACCOUNT:root`, or the bare account id) every caller of that account, as if its
//! IAM policies allowed everything (the worst case: the stand-in has no IAM policies). Service
//! principals name no caller of the stand-in. A caller the stand-in cannot name
//! ([`Caller::Unnamed`]: it was started without `--principal`) matches every `Principal`.

use std::collections::BTreeMap;

use serde_json::Value;

/// The condition-key prefix of attested recipients.
pub const RECIPIENT_PREFIX: &str = "kms:RecipientAttestation:";

/// The condition-key prefix of the request's encryption context pairs.
pub const CONTEXT_PREFIX: &str = "kms:EncryptionContext:";

/// The multivalued condition key of the request's encryption context keys.
pub const CONTEXT_KEYS: &str = "kms:EncryptionContextKeys";

/// The multivalued condition keys the stand-in knows (lowercase): only these take, and need,
/// a set qualifier.
const MULTIVALUED: [&str; 1] = ["kms:encryptioncontextkeys"];

/// Who calls: the principal the request's credentials belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Caller {
    /// The stand-in knows no principals (started without `--principal`): every `Principal`
    /// matches, and so does every grant.
    #[default]
    Unnamed,
    /// An IAM principal's ARN (a role or user).
    Principal(String),
}

impl Caller {
    /// The caller's ARN, if named.
    pub fn arn(&self) -> Option<&str> {
        match self {
            Self::Unnamed => None,
            Self::Principal(arn) => Some(arn),
        }
    }

    /// Whether `principal` (one ARN, an account root, an account id or `*`) names this caller.
    pub fn is(&self, principal: &str) -> bool {
        let Self::Principal(arn) = self else {
            return true;
        };
        if principal == "*" || principal == arn {
            return true;
        }
        // arn:PARTITION:iam::ACCOUNT:...
        let account = arn.split(':').nth(4).unwrap_or("");
        !account.is_empty()
            && (principal == account
                || principal
                    .strip_suffix(":root")
                    .and_then(|p| p.rsplit(':').next())
                    .is_some_and(|a| a == account && principal.starts_with("arn:")))
    }
}

/// The callers a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// `"*"` or `{"AWS": "*"}`.
    Anyone,
    /// `{"AWS": …}`: these ARNs, account roots or account ids (empty: only service principals,
    /// which name no caller of the stand-in).
    Aws(Vec<String>),
}

impl Principals {
    fn parse(v: &Value, sid: &str) -> Result<Self, String> {
        match v {
            Value::String(s) if s == "*" => Ok(Self::Anyone),
            Value::Object(m) => {
                let mut aws = Vec::new();
                for (k, v) in m {
                    match k.as_str() {
                        "AWS" => aws.extend(strings(v, "Principal.AWS")?),
                        "Service" | "Federated" | "CanonicalUser" => {
                            strings(v, "Principal")?;
                        }
                        other => return Err(format!("{sid}: Principal {other} is not supported")),
                    }
                }
                if aws.iter().any(|p| p == "*") {
                    return Ok(Self::Anyone);
                }
                Ok(Self::Aws(aws))
            }
            _ => Err(format!(
                "{sid}: Principal is \"*\" or an object such as {{\"AWS\": ARN}}"
            )),
        }
    }

    fn names(&self, caller: &Caller) -> bool {
        match self {
            Self::Anyone => true,
            Self::Aws(list) => {
                matches!(caller, Caller::Unnamed) || list.iter().any(|p| caller.is(p))
            }
        }
    }
}

/// What a request offers to a policy: its caller, action and condition keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Who calls.
    pub caller: Caller,
    /// `kms:GenerateDataKey`, `kms:Decrypt`, ...
    pub action: String,
    /// Single-valued condition keys (lowercase key names) and values.
    pub keys: BTreeMap<String, String>,
    /// Multivalued condition keys (lowercase key names) and their values.
    pub sets: BTreeMap<String, Vec<String>>,
}

impl RequestContext {
    /// The context of `action` by a caller whose Recipient document carried `pcrs` (verified),
    /// or no Recipient (`None`).
    pub fn new(action: &str, pcrs: Option<&BTreeMap<usize, Vec<u8>>>) -> Self {
        let mut keys = BTreeMap::new();
        if let Some(pcrs) = pcrs {
            for (i, v) in pcrs {
                keys.insert(
                    format!("{RECIPIENT_PREFIX}PCR{i}").to_ascii_lowercase(),
                    hex::encode(v),
                );
            }
            if let Some(pcr0) = pcrs.get(&0) {
                keys.insert(
                    format!("{RECIPIENT_PREFIX}ImageSha384").to_ascii_lowercase(),
                    hex::encode(pcr0),
                );
            }
        }
        Self {
            caller: Caller::Unnamed,
            action: action.to_string(),
            keys,
            sets: BTreeMap::new(),
        }
    }

    /// The same request by `caller`.
    pub fn by(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// The same request with the encryption context `context`: `kms:EncryptionContext:<key>`
    /// for each pair and `kms:EncryptionContextKeys` for the keys (absent when the context is
    /// empty). Refused when two keys differ only in case: their condition keys would be the
    /// same, and the stand-in does not model which value IAM would take.
    pub fn with_encryption_context(
        mut self,
        context: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        for (key, value) in context {
            let name = format!("{CONTEXT_PREFIX}{key}").to_ascii_lowercase();
            if self.keys.insert(name, value.clone()).is_some() {
                return Err(format!(
                    "encryption context keys that differ only in case ({key:?}) are not supported by the local KMS stand-in"
                ));
            }
        }
        if !context.is_empty() {
            self.sets.insert(
                CONTEXT_KEYS.to_ascii_lowercase(),
                context.keys().cloned().collect(),
            );
        }
        Ok(self)
    }
}

/// The policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement matched and no `Deny` did.
    Allow,
    /// A `Deny` statement matched (its `Sid`, or its position).
    ExplicitDeny(String),
    /// No statement allows the request.
    ImplicitDeny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals { ignore_case: bool, negated: bool },
    Like,
    Null,
}

/// IAM's set qualifiers, for multivalued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    /// `ForAllValues:`: every value of the request matches (none does too).
    All,
    /// `ForAnyValue:`: at least one value of the request matches.
    Any,
}

#[derive(Debug, Clone)]
struct Condition {
    qualifier: Option<Qualifier>,
    operator: Operator,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
struct Statement {
    sid: String,
    allow: bool,
    principals: Principals,
    actions: Vec<String>,
    conditions: Vec<Condition>,
}

/// A parsed key policy.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    statements: Vec<Statement>,
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} must hold strings"))
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

/// An operator, with its set qualifier if any (`ForAllValues:StringEquals`).
fn qualified_operator(name: &str) -> Result<(Option<Qualifier>, Operator), String> {
    let (qualifier, base) = if let Some(base) = name.strip_prefix("ForAllValues:") {
        (Some(Qualifier::All), base)
    } else if let Some(base) = name.strip_prefix("ForAnyValue:") {
        (Some(Qualifier::Any), base)
    } else {
        (None, name)
    };
    let operator = operator(base)?;
    if qualifier.is_some() && operator == Operator::Null {
        return Err(format!("condition operator {name} is not supported"));
    }
    Ok((qualifier, operator))
}

fn operator(name: &str) -> Result<Operator, String> {
    Ok(match name {
        "StringEquals" => Operator::Equals {
            ignore_case: false,
            negated: false,
        },
        "StringEqualsIgnoreCase" => Operator::Equals {
            ignore_case: true,
            negated: false,
        },
        "StringNotEquals" => Operator::Equals {
            ignore_case: false,
            negated: true,
        },
        "StringNotEqualsIgnoreCase" => Operator::Equals {
            ignore_case: true,
            negated: true,
        },
        "StringLike" => Operator::Like,
        "Null" => Operator::Null,
        other => return Err(format!("condition operator {other} is not supported")),
    })
}

impl KeyPolicy {
    /// Parses a policy document; anything the stand-in would not evaluate is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > 32 * 1024 {
            return Err("a key policy is at most 32 KiB".into());
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = doc.as_object().ok_or("a policy is a JSON object")?;
        for k in obj.keys() {
            if !["Version", "Id", "Statement"].contains(&k.as_str()) {
                return Err(format!("unknown policy element {k}"));
            }
        }
        let statements = match obj.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => return Err("Statement is missing".into()),
        };
        let mut out = Vec::new();
        for (n, st) in statements.iter().enumerate() {
            let st = st
                .as_object()
                .ok_or_else(|| format!("statement {n} is not an object"))?;
            for k in st.keys() {
                if ![
                    "Sid",
                    "Effect",
                    "Principal",
                    "Action",
                    "Resource",
                    "Condition",
                ]
                .contains(&k.as_str())
                {
                    return Err(format!("statement {n}: {k} is not supported"));
                }
            }
            let sid = st
                .get("Sid")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("statement {n}"));
            let allow = match st.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(format!("{sid}: Effect must be Allow or Deny")),
            };
            let principals = Principals::parse(
                st.get("Principal")
                    .ok_or_else(|| format!("{sid}: a key policy statement needs a Principal"))?,
                &sid,
            )?;
            let actions = strings(
                st.get("Action")
                    .ok_or_else(|| format!("{sid}: Action is missing"))?,
                "Action",
            )?;
            let mut conditions = Vec::new();
            if let Some(c) = st.get("Condition") {
                let c = c
                    .as_object()
                    .ok_or_else(|| format!("{sid}: Condition is an object"))?;
                for (op, keys) in c {
                    let (qualifier, operator) =
                        qualified_operator(op).map_err(|e| format!("{sid}: {e}"))?;
                    let keys = keys
                        .as_object()
                        .ok_or_else(|| format!("{sid}: {op} maps keys to values"))?;
                    for (key, values) in keys {
                        let values = strings(values, key)?;
                        if operator == Operator::Null
                            && values.iter().any(|v| v != "true" && v != "false")
                        {
                            return Err(format!("{sid}: Null takes \"true\" or \"false\""));
                        }
                        let key = key.to_ascii_lowercase();
                        let multivalued = MULTIVALUED.contains(&key.as_str());
                        if multivalued && qualifier.is_none() {
                            return Err(format!(
                                "{sid}: {key} is multivalued: use ForAllValues:{op} or ForAnyValue:{op}"
                            ));
                        }
                        if !multivalued && qualifier.is_some() {
                            return Err(format!(
                                "{sid}: {op} takes a multivalued key, and {key} is single-valued"
                            ));
                        }
                        conditions.push(Condition {
                            qualifier,
                            operator,
                            key,
                            values,
                        });
                    }
                }
            }
            out.push(Statement {
                sid,
                allow,
                principals,
                actions,
                conditions,
            });
        }
        Ok(Self { statements: out })
    }

    /// The verdict on `request`.
    pub fn evaluate(&self, request: &RequestContext) -> Decision {
        let mut allowed = false;
        for st in &self.statements {
            if !st.principals.names(&request.caller) {
                continue;
            }
            if !st.actions.iter().any(|a| like(a, &request.action, true)) {
                continue;
            }
            if !st.conditions.iter().all(|c| c.matches(request)) {
                continue;
            }
            if !st.allow {
                return Decision::ExplicitDeny(st.sid.clone());
            }
            allowed = true;
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

impl Condition {
    fn matches(&self, request: &RequestContext) -> bool {
        if let Some(qualifier) = self.qualifier {
            let values = request.sets.get(&self.key).map_or(&[][..], Vec::as_slice);
            return match qualifier {
                Qualifier::All => values.iter().all(|v| self.matches_value(Some(v))),
                Qualifier::Any => values.iter().any(|v| self.matches_value(Some(v))),
            };
        }
        self.matches_value(request.keys.get(&self.key))
    }

    /// The operator on one value of the request (`None`: the request lacks the key).
    fn matches_value(&self, value: Option<&String>) -> bool {
        match self.operator {
            Operator::Null => {
                let want_absent = self.values.iter().any(|v| v == "true");
                value.is_none() == want_absent
            }
            Operator::Equals {
                ignore_case,
                negated,
            } => {
                let Some(value) = value else {
                    // IAM: an absent key fails every positive operator and satisfies every
                    // negated one.
                    return negated;
                };
                let hit = self.values.iter().any(|v| {
                    if ignore_case {
                        v.eq_ignore_ascii_case(value)
                    } else {
                        v == value
                    }
                });
                hit != negated
            }
            Operator::Like => value.is_some_and(|v| self.values.iter().any(|p| like(p, v, false))),
        }
    }
}

/// IAM wildcard match (`*` any run, `?` one character); actions compare case-insensitively.
fn like(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_ascii_lowercase().chars().collect(),
            value.to_ascii_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    // Iterative glob match with backtracking on the last `*`.
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests;
