//! Fuzz target `frame`: see `cohort_fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::frame(data));
