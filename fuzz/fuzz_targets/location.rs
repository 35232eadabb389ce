//! See `redist_fuzzcheck::location` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redist_fuzzcheck::location::check(data));
