//! The applier: a [`Plan`] onto a file (positioned writes and `set_len`) or
//! onto a byte vector (tests, fuzzing).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::plan::Plan;

/// How much of a shifted file is moved at a time.
const CHUNK: u64 = 1 << 20;

/// Applies `plan` to an open file (readable and writable) whose current
/// length is `plan.old_len`.
///
/// The tail is written first and the headers last, so an interrupted write
/// most likely leaves the old headers pointing at the old, intact data. An
/// empty plan does not touch the file at all. A plan that shifts the
/// contents (the last resort for some shared libraries) moves them in
/// place, from the end, a chunk at a time; that step cannot be made safe
/// against interruption.
pub fn to_file(file: &File, plan: &Plan) -> io::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    if plan.shift > 0 {
        let mut buf = vec![0; CHUNK.min(plan.old_len) as usize];
        let mut end = plan.old_len;
        // Each chunk lands above everything not yet copied.
        while end > 0 {
            let n = CHUNK.min(end);
            let start = end - n;
            let chunk = &mut buf[..n as usize];
            file.read_exact_at(chunk, start)?;
            file.write_all_at(chunk, start + plan.shift)?;
            end = start;
        }
    }
    if let Some(tail) = &plan.tail {
        file.write_all_at(&tail.bytes, tail.offset)?;
    }
    for w in plan.writes.iter().rev() {
        file.write_all_at(&w.bytes, w.offset)?;
    }
    if plan.new_len != plan.old_len {
        file.set_len(plan.new_len)?;
    }
    Ok(())
}

/// Applies `plan` to a copy of `data` (which must be the bytes it was
/// planned for) and returns the result.
pub fn to_vec(data: &[u8], plan: &Plan) -> Vec<u8> {
    let mut out = vec![0; plan.shift as usize];
    out.extend_from_slice(data);
    for w in plan.writes.iter().chain(&plan.tail) {
        let start = w.offset as usize;
        let end = start + w.bytes.len();
        if out.len() < end {
            out.resize(end, 0);
        }
        out[start..end].copy_from_slice(&w.bytes);
    }
    out.resize(plan.new_len as usize, 0);
    out
}
