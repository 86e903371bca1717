//! Fuzz target `peer_envelope`: see `cohort_fuzz::peer_envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cohort_fuzz::peer_envelope(data));
