//! The properties the fuzz targets in `fuzz/` check, one function per
//! target. Each takes the fuzzer's raw bytes and panics when a property
//! breaks; a clean error from the code under test is a pass.
//!
//! They live here, in the workspace, so that stable `cargo test` replays
//! every seed and every crash the fuzzers found (`tests/replay.rs`), and
//! the fuzz targets are one line each.

#![warn(missing_docs)]

pub mod archive;
pub mod elf;
pub mod location;
pub mod manifest;
pub mod rewriters;
pub mod seeds;

/// A target's property: panics when it breaks.
pub type Check = fn(&[u8]);

/// The targets, by name, as `cargo fuzz` knows them.
pub const TARGETS: [(&str, Check); 5] = [
    ("elf_edit", elf::check),
    ("archive_policy", archive::check),
    ("manifest", manifest::check),
    ("rewriters", rewriters::check),
    ("location", location::check),
];
