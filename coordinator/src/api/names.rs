//! The names requests carry, as the server checks them: key ids and idempotency keys
//! (`openapi.json` declares the same patterns as `KeyId` and `IdempotencyKey`).

/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 128;

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Whether `id` is a valid key id: 1 to 128 of `A-Z a-z 0-9 . _ -`.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether `key` is a valid idempotency key: 1 to 128 of `A-Z a-z 0-9 . _ : -`.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_and_idempotency_keys() {
        assert!(valid_key_id("treasury-btc.1_A") && valid_key_id(&"k".repeat(128)));
        for bad in ["", "a b", "a:b", "a/b", "é", &"k".repeat(129)] {
            assert!(!valid_key_id(bad), "{bad}");
        }
        assert!(valid_idempotency_key("payout:2024-06-01.0001_A"));
        assert!(valid_idempotency_key(&"i".repeat(128)));
        for bad in ["", "a b", "a/b", "a!b", "é", &"i".repeat(129)] {
            assert!(!valid_idempotency_key(bad), "{bad}");
        }
    }
}
