//! The dynamic string table: who points into it, and where new strings go.
//!
//! Linkers tail-merge strings: `DT_RUNPATH` "/opt/lib" and a symbol named
//! "lib" may share bytes, both ending at the same NUL. A string can therefore
//! be overwritten in place only when nothing else ends at its NUL. Anything
//! else goes to the end of a *copy* of the table, so every existing offset
//! stays valid. [`place`] makes that decision for a batch of new strings.

use std::collections::HashSet;

use goblin::elf::section_header::{SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_VERDEF, SHT_GNU_VERNEED};

use crate::error::Result;
use crate::view::{Tables, View};

/// The references into the string table that will stay as they are.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refs {
    /// String offsets that must keep their meaning.
    pub fixed: Vec<u64>,
    /// Whether `fixed` is known to hold every reference. When it is not,
    /// nothing is overwritten in place and a copy keeps every byte.
    pub complete: bool,
}

/// Symbol and version-table references: the ones no edit changes.
pub(crate) fn symbol_refs(view: &View<'_>, tables: &Tables) -> Result<Refs> {
    let mut refs = Refs {
        fixed: tables.version_names.clone(),
        complete: true,
    };
    match view.symbol_names(tables)? {
        Some(names) => refs.fixed.extend(names),
        None => refs.complete &= tables.symtab.is_none(),
    }
    // A section we do not know that links to .dynstr may hold offsets we
    // cannot see.
    if let Some(idx) = view.dynstr.as_ref().and_then(|t| t.shdr) {
        let known = [SHT_DYNSYM, SHT_DYNAMIC, SHT_GNU_VERDEF, SHT_GNU_VERNEED];
        refs.complete &= !view
            .shdrs
            .iter()
            .any(|s| s.sh_link as usize == idx && !known.contains(&s.sh_type));
    }
    Ok(refs)
}

/// A string to place, and the offsets its users pointed at before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Want {
    /// The new string, without NUL.
    pub value: Vec<u8>,
    /// Old string offsets of the entries that will point at `value`; their
    /// slots may be reused when nobody else shares them.
    pub old: Vec<u64>,
}

/// Where each wanted string ended up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Placement {
    /// Offset of each [`Want`], in order.
    pub offsets: Vec<u64>,
    /// Writes into the existing table (offset inside the table, bytes), when
    /// no copy is needed.
    pub patches: Vec<(u64, Vec<u8>)>,
    /// The whole new table, when some string had to be appended.
    pub copy: Option<Vec<u8>>,
    /// With a copy: the old table (offset inside it, zeros), to clear.
    pub abandoned: Vec<(u64, Vec<u8>)>,
}

fn nul_at_or_after(table: &[u8], off: u64) -> Option<usize> {
    let start = usize::try_from(off).ok()?;
    let rest = table.get(start..)?;
    rest.iter().position(|&b| b == 0).map(|p| start + p)
}

/// Decides where each wanted string goes: over its own old slot when no one
/// else ends at that NUL, onto an identical existing string, or at the end of
/// a copy of the table (trimmed of strings nobody references any more).
pub(crate) fn place(table: &[u8], refs: &Refs, wants: &[Want]) -> Placement {
    let fixed_nuls: HashSet<usize> = refs
        .fixed
        .iter()
        .filter_map(|&f| nul_at_or_after(table, f))
        .collect();
    let mut referenced: HashSet<u64> = refs.fixed.iter().copied().collect();
    for w in wants {
        referenced.extend(w.old.iter().copied());
    }
    let mut offsets: Vec<Option<u64>> = vec![None; wants.len()];
    let mut patches: Vec<(u64, Vec<u8>)> = Vec::new();

    // 1. In place, over a slot only this want's users end in.
    if refs.complete {
        in_place(
            table,
            wants,
            &fixed_nuls,
            &referenced,
            &mut offsets,
            &mut patches,
        );
    }

    // 2. Onto an identical string (or suffix) that nothing overwrites.
    let claimed: Vec<(usize, usize)> = patches
        .iter()
        .map(|(o, b)| (*o as usize, *o as usize + b.len()))
        .collect();
    for (i, w) in wants.iter().enumerate() {
        if offsets[i].is_some() {
            continue;
        }
        let len = w.value.len();
        let found = table.iter().enumerate().find_map(|(q, &b)| {
            if b != 0 || q < len || table[q - len..q] != w.value[..] {
                return None;
            }
            let p = q - len;
            let clash = claimed.iter().any(|&(s, e)| p < e && s <= q);
            (!clash).then_some(p as u64)
        });
        offsets[i] = found;
    }

    // 3. At the end of a copy.
    if offsets.iter().all(Option::is_some) {
        let offsets: Vec<u64> = offsets.into_iter().flatten().collect();
        if refs.complete {
            scrub_abandoned(table, refs, wants, &offsets, &mut patches);
        }
        return Placement {
            offsets,
            patches,
            copy: None,
            abandoned: Vec::new(),
        };
    }
    let mut copy = table.to_vec();
    for (o, b) in &patches {
        copy[*o as usize..*o as usize + b.len()].copy_from_slice(b);
    }
    let keep = if refs.complete {
        refs.fixed
            .iter()
            .copied()
            .chain(offsets.iter().flatten().copied())
            .filter_map(|o| nul_at_or_after(&copy, o))
            .map(|n| n + 1)
            .max()
            .unwrap_or(1)
    } else {
        copy.len()
    };
    copy.truncate(keep);
    if copy.is_empty() {
        copy.push(0);
    }
    if refs.complete {
        // Nothing stale survives in the copy: the old values of the edited
        // strings that no reference reads any more are cleared.
        let placed: Vec<u64> = offsets.iter().flatten().copied().collect();
        let mut clear = Vec::new();
        scrub_abandoned(&copy, refs, wants, &placed, &mut clear);
        for (o, b) in clear {
            copy[o as usize..o as usize + b.len()].copy_from_slice(&b);
        }
    }
    // The old table is abandoned as a whole (every reference now reads the
    // copy): it is cleared, like patchelf clears what it replaces.
    let abandoned = vec![(0, vec![0; table.len()])];
    for (i, w) in wants.iter().enumerate() {
        if offsets[i].is_none() {
            offsets[i] = Some(copy.len() as u64);
            copy.extend_from_slice(&w.value);
            copy.push(0);
        }
    }
    Placement {
        offsets: offsets.into_iter().flatten().collect(),
        patches: Vec::new(),
        copy: Some(copy),
        abandoned,
    }
}

/// Step 1 of [`place`]: each want over its own old slot, when only its
/// users end at that NUL and the value fits (with free NUL padding after).
fn in_place(
    table: &[u8],
    wants: &[Want],
    fixed_nuls: &HashSet<usize>,
    referenced: &HashSet<u64>,
    offsets: &mut [Option<u64>],
    patches: &mut Vec<(u64, Vec<u8>)>,
) {
    for (i, w) in wants.iter().enumerate() {
        for &o in &w.old {
            let Some(n) = nul_at_or_after(table, o) else {
                continue;
            };
            if fixed_nuls.contains(&n) {
                continue;
            }
            let shared = wants.iter().enumerate().any(|(j, other)| {
                j != i
                    && other
                        .old
                        .iter()
                        .any(|&x| nul_at_or_after(table, x) == Some(n))
            });
            if shared {
                continue;
            }
            let start = w
                .old
                .iter()
                .filter(|&&x| nul_at_or_after(table, x) == Some(n))
                .min()
                .copied()
                .unwrap_or(o) as usize;
            // Unreferenced NUL padding after the slot is free too (a
            // shorter string written here earlier leaves some).
            let mut end = n;
            while end + 1 < table.len()
                && table[end + 1] == 0
                && !referenced.contains(&((end + 1) as u64))
            {
                end += 1;
            }
            if w.value.len() <= end - start {
                let mut bytes = w.value.clone();
                bytes.push(0);
                if bytes.len() < n + 1 - start {
                    bytes.resize(n + 1 - start, 0);
                }
                patches.push((start as u64, bytes));
                offsets[i] = Some(start as u64);
                break;
            }
        }
    }
}

/// Which bytes of `table` belong to a string some offset in `refs` reads
/// (from the offset to its NUL, inclusive).
fn live_bytes(table: &[u8], refs: impl Iterator<Item = u64>) -> Vec<bool> {
    let mut live = vec![false; table.len()];
    for o in refs {
        if let (Ok(start), Some(n)) = (usize::try_from(o), nul_at_or_after(table, o)) {
            live[start..=n].iter_mut().for_each(|l| *l = true);
        }
    }
    live
}

/// In-place edits: the old value of an edited string that no reference
/// reads any more (its users moved to another string) is cleared, so no
/// stale path survives in the file (Nix scans every byte for store paths).
fn scrub_abandoned(
    table: &[u8],
    refs: &Refs,
    wants: &[Want],
    offsets: &[u64],
    patches: &mut Vec<(u64, Vec<u8>)>,
) {
    let mut after = table.to_vec();
    for (o, b) in patches.iter() {
        after[*o as usize..*o as usize + b.len()].copy_from_slice(b);
    }
    let live = live_bytes(&after, refs.fixed.iter().chain(offsets).copied());
    for w in wants {
        for &o in &w.old {
            let (Ok(start), Some(n)) = (usize::try_from(o), nul_at_or_after(&after, o)) else {
                continue;
            };
            if start < n && !live[start..n].iter().any(|&l| l) {
                patches.push((o, vec![0; n - start]));
                after[start..n].iter_mut().for_each(|b| *b = 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(v: &str, old: &[u64]) -> Want {
        Want {
            value: v.as_bytes().to_vec(),
            old: old.to_vec(),
        }
    }

    // "\0libc.so.6\0/opt/lib\0"  offsets: libc=1, /opt/lib=11, "lib"=16
    const TABLE: &[u8] = b"\0libc.so.6\0/opt/lib\0";

    #[test]
    fn shorter_string_is_written_in_place_when_unshared() {
        let refs = Refs {
            fixed: vec![1],
            complete: true,
        };
        let p = place(TABLE, &refs, &[want("/a", &[11])]);
        assert_eq!(p.copy, None);
        assert_eq!(p.offsets, vec![11]);
        assert_eq!(p.patches, vec![(11, b"/a\0\0\0\0\0\0\0".to_vec())]);
    }

    #[test]
    fn tail_merged_string_is_never_overwritten() {
        // A symbol named "lib" ends at the same NUL as "/opt/lib".
        let refs = Refs {
            fixed: vec![1, 16],
            complete: true,
        };
        let p = place(TABLE, &refs, &[want("/a", &[11])]);
        let copy = p.copy.expect("a copy");
        assert_eq!(&copy[..TABLE.len()], TABLE);
        assert_eq!(p.offsets, vec![TABLE.len() as u64]);
        assert_eq!(&copy[TABLE.len()..], b"/a\0");
    }

    #[test]
    fn nothing_is_overwritten_when_references_are_unknown() {
        let refs = Refs {
            fixed: vec![1],
            complete: false,
        };
        let p = place(TABLE, &refs, &[want("/a", &[11])]);
        assert!(p.copy.is_some());
        assert!(p.patches.is_empty());
    }

    #[test]
    fn existing_string_is_reused() {
        let refs = Refs {
            fixed: vec![1, 11],
            complete: true,
        };
        let p = place(TABLE, &refs, &[want("so.6", &[])]);
        assert_eq!(p.copy, None);
        assert_eq!(p.offsets, vec![6]);
        assert!(p.patches.is_empty());
    }

    #[test]
    fn copy_drops_strings_nobody_references() {
        let refs = Refs {
            fixed: vec![1],
            complete: true,
        };
        let long = "/a/much/longer/path";
        let p = place(TABLE, &refs, &[want(long, &[11])]);
        let copy = p.copy.unwrap();
        assert_eq!(&copy[..11], b"\0libc.so.6\0");
        assert_eq!(p.offsets, vec![11]);
        assert_eq!(&copy[11..], format!("{long}\0").as_bytes());
    }

    #[test]
    fn copy_clears_strings_nobody_references() {
        // "/opt/lib" is abandoned, "sym" after it is a symbol name.
        let table = b"\0libc.so.6\0/opt/lib\0sym\0";
        let refs = Refs {
            fixed: vec![1, 20],
            complete: true,
        };
        let long = "/a/much/longer/path";
        let p = place(table, &refs, &[want(long, &[11])]);
        let copy = p.copy.unwrap();
        assert_eq!(
            &copy[..table.len()],
            b"\0libc.so.6\0\0\0\0\0\0\0\0\0\0sym\0"
        );
        assert_eq!(&copy[table.len()..], format!("{long}\0").as_bytes());
        assert_eq!(p.abandoned, vec![(0, vec![0; table.len()])]);
    }

    #[test]
    fn a_string_left_for_an_existing_one_is_cleared() {
        // RUNPATH "/opt/lib" becomes "libc.so.6", too long for its slot
        // but already there: the old slot is unreferenced and cleared.
        let refs = Refs {
            fixed: vec![1],
            complete: true,
        };
        let p = place(TABLE, &refs, &[want("libc.so.6", &[11])]);
        assert_eq!(p.copy, None);
        assert_eq!(p.offsets, vec![1]);
        assert_eq!(p.patches, vec![(11, vec![0; 8])]);
    }

    #[test]
    fn padding_left_by_a_shorter_string_is_reused() {
        // "/a" written over "/opt/lib" earlier: "/a\0\0\0\0\0\0\0".
        let table = b"\0libc.so.6\0/a\0\0\0\0\0\0\0";
        let refs = Refs {
            fixed: vec![1],
            complete: true,
        };
        let p = place(table, &refs, &[want("/opt/lib", &[11])]);
        assert_eq!(p.copy, None);
        assert_eq!(p.offsets, vec![11]);
    }
}
