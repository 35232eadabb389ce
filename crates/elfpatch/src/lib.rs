//! `elfpatch` edits the dynamic-linking metadata of ELF files — interpreter,
//! RUNPATH/RPATH, `DT_NEEDED`, SONAME — writing only the bytes that change.
//!
//! It knows ELF and nothing about CUDA, archives or layouts. The editing half
//! (view → planner → applier) is tracked as its own piece of work; today the
//! crate offers the cheap classification the unpacker needs while it writes
//! files.

/// The four bytes every ELF file starts with.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

/// Whether `head` (the first bytes of a file) starts like an ELF file.
///
/// ```
/// assert!(elfpatch::is_elf(b"\x7fELF\x02\x01\x01"));
/// assert!(!elfpatch::is_elf(b"#!/bin/sh"));
/// ```
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(&ELF_MAGIC)
}
