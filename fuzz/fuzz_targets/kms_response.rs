//! Fuzz target `kms_response`: see `cohort_fuzz::kms_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::kms_response(data));
