//! Fuzz target `adapter_decode`: see `cohort_fuzz::adapter_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::adapter_decode(data));
