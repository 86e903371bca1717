//! Fuzz target `attestation_doc`: see `cohort_fuzz::attestation_doc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::attestation_doc(data));
