//! See `redist_fuzzcheck::archive` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redist_fuzzcheck::archive::check(data));
