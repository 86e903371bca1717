//! Fuzz target `api_request`: see `cohort_fuzz::api_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::api_request(data));
