//! Fuzz target `kms_envelope`: see `cohort_fuzz::kms_envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::kms_envelope(data));
