//! Renaming dynamic symbols (patchelf's `--rename-dynamic-symbols`).
//!
//! A symbol's name is found through the hash tables, so renaming one means
//! rebuilding them: `.gnu.hash` keeps its hashed symbols grouped by bucket,
//! so those symbols are put in bucket order again (a stable sort), their
//! `.gnu.version` entries follow them, and every relocation against the
//! dynamic symbol table is renumbered; then the bloom filter, buckets and
//! chains are written anew. `DT_HASH` is rebuilt from the final order. New
//! names are placed like any new string ([`crate::strtab`]); old names stay
//! (nothing else may use them, but nothing says so).

use goblin::elf::header::{EM_MIPS, EM_MIPS_RS3_LE};
use goblin::elf::section_header::{SHT_DYNSYM, SHT_REL, SHT_RELA};

use crate::error::{Malformed, Result, Unsupported};
use crate::view::{Table, Tables, View};

/// The name of every dynamic symbol, by index.
pub(crate) fn names<'v>(view: &'v View<'_>, tables: &Tables) -> Result<Vec<&'v [u8]>> {
    let offsets = view
        .symbol_names(tables)?
        .ok_or(Unsupported::NoSymbolTable)?;
    let strtab = view
        .dynstr
        .as_ref()
        .ok_or(Malformed::MissingStrtab("symbols"))?;
    offsets
        .into_iter()
        .map(|n| name_at(strtab.get(n), n, strtab.bytes.len()))
        .collect()
}

/// The symbols `map` renames: (symbol index, new name).
pub(crate) fn renames(
    view: &View<'_>,
    tables: &Tables,
    map: &[(String, String)],
) -> Result<Vec<(usize, Vec<u8>)>> {
    if map.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, name) in names(view, tables)?.into_iter().enumerate() {
        if let Some((_, to)) = map.iter().find(|(from, _)| from.as_bytes() == name) {
            out.push((i, to.as_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn name_at(name: Option<&[u8]>, offset: u64, size: usize) -> Result<&[u8]> {
    name.ok_or_else(|| {
        Malformed::StringOutOfBounds {
            what: "st_name",
            offset,
            size: size as u64,
        }
        .into()
    })
}

/// The GNU hash of a symbol name (DJB).
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    })
}

/// The System V ELF hash of a symbol name.
fn elf_hash(name: &[u8]) -> u32 {
    let mut h = 0u32;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// Content writes that give the renamed symbols (index, new name, its
/// offset in the final string table) their names and rebuild the hash
/// tables around them.
pub(crate) fn rebuild(
    view: &View<'_>,
    tables: &Tables,
    renamed: &[(usize, Vec<u8>, u64)],
) -> Result<Vec<(u64, Vec<u8>)>> {
    let codec = view.codec;
    let (Some(symtab), Some(n)) = (&tables.symtab, tables.nsyms) else {
        return Err(Unsupported::NoSymbolTable.into());
    };
    let size = symtab.size.ok_or(Unsupported::NoSymbolTable)?;
    let n = n as usize;
    let syment = (size / n.max(1) as u64) as usize;
    let strtab = view
        .dynstr
        .as_ref()
        .ok_or(Malformed::MissingStrtab("symbols"))?;
    let mut syms = view.read(symtab.offset, size, "dynamic symbol table")?;
    // The final name of every symbol.
    let mut names: Vec<Vec<u8>> = Vec::with_capacity(n);
    for i in 0..n {
        let at = i * syment;
        let off = u64::from(codec.u32(&syms, at).ok_or(Malformed::BadVersionTable {
            what: "dynamic symbol table",
            problem: "truncated symbol",
        })?);
        names.push(name_at(strtab.get(off), off, strtab.bytes.len())?.to_vec());
    }
    for (i, name, off) in renamed {
        let v = u32::try_from(*off).map_err(|_| Unsupported::TooLarge {
            what: "string offset",
            value: *off,
        })?;
        codec.put_u32(&mut syms, i * syment, v);
        names[*i] = name.clone();
    }
    let mut writes = Vec::new();

    // .gnu.hash: hashed symbols in bucket order, then the table.
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(g) = &tables.gnu_hash {
        writes.push(gnu_hash_table(view, g, &names, &mut order)?);
    }

    // Symbols (and their versions) in the new order; relocations follow.
    let moved = order.iter().enumerate().any(|(k, &i)| k != i);
    if moved {
        let mut permuted = vec![0u8; syms.len()];
        for (k, &i) in order.iter().enumerate() {
            permuted[k * syment..(k + 1) * syment]
                .copy_from_slice(&syms[i * syment..(i + 1) * syment]);
        }
        syms = permuted;
        names = order.iter().map(|&i| names[i].clone()).collect();
        if let Some(v) = &tables.versym {
            let old = view.read(v.offset, 2 * n as u64, "symbol versions")?;
            let mut new = vec![0u8; old.len()];
            for (k, &i) in order.iter().enumerate() {
                new[2 * k..2 * k + 2].copy_from_slice(&old[2 * i..2 * i + 2]);
            }
            writes.push((v.offset, new));
        }
        writes.extend(renumber_relocations(view, symtab.offset, &order)?);
    }
    writes.push((symtab.offset, syms));

    // DT_HASH, from the final order.
    if let Some(h) = &tables.hash {
        writes.push(sysv_hash_table(view, h, &names)?);
    }
    Ok(writes)
}

/// A new `.gnu.hash` for `names` (bloom words, buckets, chains; the header
/// kept), with the hashed symbols of `order` sorted into bucket order.
fn gnu_hash_table(
    view: &View<'_>,
    g: &Table,
    names: &[Vec<u8>],
    order: &mut [usize],
) -> Result<(u64, Vec<u8>)> {
    let codec = view.codec;
    let n = names.len();
    let head = view.read(g.offset, 16, "DT_GNU_HASH")?;
    let word = |o| codec.u32(&head, o).map(u64::from).unwrap_or(0);
    let (nbuckets, symoffset, maskwords, shift2) = (word(0), word(4), word(8), word(12));
    if nbuckets == 0 || symoffset as usize > n {
        return Err(Malformed::BadField {
            field: "DT_GNU_HASH header",
            value: nbuckets,
        }
        .into());
    }
    let first = symoffset as usize;
    let hashes: Vec<u32> = names.iter().map(|s| gnu_hash(s)).collect();
    let bucket = |i: usize| u64::from(hashes[i]) % nbuckets;
    order[first..].sort_by_key(|&i| bucket(i));
    // Bloom filter, buckets, chains.
    let bits = if codec.is64 { 64 } else { 32 };
    let mut bloom = vec![0u64; maskwords as usize];
    let mut buckets = vec![0u32; nbuckets as usize];
    let mut chains = vec![0u32; n - first];
    for (k, &i) in order[first..].iter().enumerate() {
        let h = u64::from(hashes[i]);
        if maskwords > 0 {
            let w = ((h / bits) % maskwords) as usize;
            bloom[w] |= (1u64 << (h % bits)) | (1u64 << ((h >> shift2) % bits));
        }
        let b = bucket(i) as usize;
        if buckets[b] == 0 {
            buckets[b] = (first + k) as u32;
        }
        let last = order
            .get(first + k + 1)
            .is_none_or(|&j| bucket(j) != bucket(i));
        chains[k] = if last { hashes[i] | 1 } else { hashes[i] & !1 };
    }
    let mut table = Vec::new();
    let mut put = |v: u64, width: usize| {
        let mut b = vec![0u8; width];
        match width {
            4 => codec.put_u32(&mut b, 0, v as u32),
            _ => codec.put_uword(&mut b, 0, v),
        }
        table.extend(b);
    };
    for w in &bloom {
        put(*w, codec.word() as usize);
    }
    for b in &buckets {
        put(u64::from(*b), 4);
    }
    for c in &chains {
        put(u64::from(*c), 4);
    }
    Ok((g.offset + 16, table))
}

/// A new `DT_HASH` bucket and chain array for `names` (header kept).
fn sysv_hash_table(view: &View<'_>, h: &Table, names: &[Vec<u8>]) -> Result<(u64, Vec<u8>)> {
    let codec = view.codec;
    let es = view.hash_entry_size() as usize;
    let head = view.read(h.offset, 2 * es as u64, "DT_HASH")?;
    let nbucket = codec.uword_sized(&head, 0, es).unwrap_or(0) as usize;
    let nchain = codec.uword_sized(&head, es, es).unwrap_or(0) as usize;
    if nbucket == 0 {
        return Err(Malformed::BadField {
            field: "DT_HASH bucket count",
            value: 0,
        }
        .into());
    }
    let mut buckets = vec![0u64; nbucket];
    let mut chains = vec![0u64; nchain];
    for (i, name) in names.iter().enumerate().take(nchain).skip(1) {
        let b = elf_hash(name) as usize % nbucket;
        chains[i] = buckets[b];
        buckets[b] = i as u64;
    }
    let mut table = vec![0u8; (nbucket + nchain) * es];
    for (k, v) in buckets.iter().chain(chains.iter()).enumerate() {
        codec.put_sized(&mut table, k * es, *v, es);
    }
    Ok((h.offset + 2 * es as u64, table))
}

/// Relocations against `.dynsym` (every `SHT_REL`/`SHT_RELA` section linked
/// to it) with their symbol indices renumbered: old index `order[k]` is
/// now `k`.
fn renumber_relocations(
    view: &View<'_>,
    dynsym_offset: u64,
    order: &[usize],
) -> Result<Vec<(u64, Vec<u8>)>> {
    let codec = view.codec;
    if matches!(view.machine(), EM_MIPS | EM_MIPS_RS3_LE) {
        return Err(Unsupported::RenameNeedsReorder("MIPS relocations").into());
    }
    let dynsym = view
        .shdrs
        .iter()
        .position(|s| s.sh_type == SHT_DYNSYM && s.sh_offset == dynsym_offset)
        .ok_or(Unsupported::RenameNeedsReorder(
            "no section headers to find the relocations",
        ))?;
    let mut new_index = vec![0u64; order.len()];
    for (k, &i) in order.iter().enumerate() {
        new_index[i] = k as u64;
    }
    let mut writes = Vec::new();
    for s in &view.shdrs {
        if !(s.sh_type == SHT_REL || s.sh_type == SHT_RELA) || s.sh_link as usize != dynsym {
            continue;
        }
        let word = codec.word();
        let entsize = match (s.sh_type == SHT_RELA, codec.is64) {
            (false, false) => 8,
            (true, false) => 12,
            (false, true) => 16,
            (true, true) => 24,
        };
        let mut bytes = view.read(s.sh_offset, s.sh_size, "relocations")?;
        let count = s.sh_size / entsize;
        for r in 0..count {
            let at = (r * entsize + word) as usize;
            let info = codec.uword(&bytes, at).unwrap_or(0);
            let (sym, rest) = if codec.is64 {
                (info >> 32, info & 0xffff_ffff)
            } else {
                (info >> 8, info & 0xff)
            };
            let Some(&new) = new_index.get(sym as usize) else {
                continue;
            };
            let info = if codec.is64 {
                (new << 32) | rest
            } else {
                (new << 8) | rest
            };
            codec.put_uword(&mut bytes, at, info);
        }
        writes.push((s.sh_offset, bytes));
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_specifications() {
        // Values from the GNU hash and System V ABI descriptions.
        assert_eq!(gnu_hash(b""), 0x0000_1505);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(gnu_hash(b"exit"), 0x7c96_7e3f);
        assert_eq!(elf_hash(b""), 0);
        assert_eq!(elf_hash(b"printf"), 0x0779_05a6);
        assert_eq!(elf_hash(b"exit"), 0x0006_cf04);
    }
}
