//! See `redist_fuzzcheck::rewriters` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redist_fuzzcheck::rewriters::check(data));
