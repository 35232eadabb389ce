//! See `redist_fuzzcheck::elf` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redist_fuzzcheck::elf::check(data));
