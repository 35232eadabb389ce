//! See `redist_fuzzcheck::manifest` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redist_fuzzcheck::manifest::check(data));
