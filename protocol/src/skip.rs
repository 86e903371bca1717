//! `skip_serializing_if` predicates for fields added to a signed or sealed format after it
//! shipped: left out at their default, so the bytes of everything that does not use them stay
//! what they were (and an earlier reader still reads them).

/// Whether `n` is 0.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
pub fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Whether `b` is `false`.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
pub fn is_false(b: &bool) -> bool {
    !*b
}
