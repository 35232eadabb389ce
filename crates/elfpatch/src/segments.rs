//! What lies where in the file, and what may move.
//!
//! The planner needs to know which bytes belong to what before it moves
//! anything: the sections (when there are section headers), the segments that
//! point at sub-ranges (`PT_INTERP`, `PT_NOTE`, …) and the tables the dynamic
//! section points at. Each of those is an [`Object`] with the *referrers*
//! that name its location (a program header, a section header, a dynamic
//! tag). Overlapping objects form a [`Group`] that can only move as a whole,
//! and only when every referrer of every member can be updated.
//!
//! Three questions are answered here:
//! - can the program header table grow by one entry in place, and which
//!   groups must move away to make room ([`room_after_phdrs`]);
//! - is the last segment a tail we created earlier that can be rebuilt
//!   ([`own_tail`]), or at least one that can be extended ([`extendable`]).

use std::collections::HashSet;

use goblin::elf::dynamic::{
    DT_GNU_HASH, DT_HASH, DT_NEEDED, DT_NULL, DT_STRSZ, DT_STRTAB, DT_SYMENT, DT_SYMTAB, DT_VERDEF,
    DT_VERNEED, DT_VERSYM,
};
use goblin::elf::program_header::{
    PF_R, PF_W, PF_X, PT_DYNAMIC, PT_GNU_PROPERTY, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_NOTE,
    PT_NULL, PT_PHDR,
};
use goblin::elf::section_header::{
    SHF_ALLOC, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_HASH, SHT_GNU_VERDEF, SHT_GNU_VERNEED,
    SHT_GNU_VERSYM, SHT_HASH, SHT_NOBITS, SHT_NOTE, SHT_NULL, SHT_STRTAB,
};

use crate::view::{Tables, View, STRING_TAGS};

/// Something that names the location of an object, and is updated when the
/// object moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Referrer {
    /// A program header, by index.
    Phdr(usize),
    /// A section header, by index.
    Shdr(usize),
    /// A dynamic entry, by tag.
    Tag(u64),
}

/// Dynamic tags pointing at tables that may move (the planner rewrites them).
pub(crate) const MOVABLE_TAGS: &[u64] = &[
    DT_STRTAB,
    DT_SYMTAB,
    DT_HASH,
    DT_GNU_HASH,
    DT_VERSYM,
    DT_VERNEED,
    DT_VERDEF,
];

/// Dynamic tags whose value is a size, count or flag word, never an address.
const VALUE_TAGS: &[u64] = &[
    DT_NULL,
    DT_NEEDED,
    2, // DT_PLTRELSZ
    8, // DT_RELASZ
    9, // DT_RELAENT
    DT_STRSZ,
    DT_SYMENT,
    16,          // DT_SYMBOLIC
    18,          // DT_RELSZ
    19,          // DT_RELENT
    20,          // DT_PLTREL
    21,          // DT_DEBUG
    22,          // DT_TEXTREL
    24,          // DT_BIND_NOW
    27,          // DT_INIT_ARRAYSZ
    28,          // DT_FINI_ARRAYSZ
    30,          // DT_FLAGS
    33,          // DT_PREINIT_ARRAYSZ
    35,          // DT_RELRSZ
    37,          // DT_RELRENT
    0x6fff_fdf5, // DT_GNU_PRELINKED
    0x6fff_fdf6, // DT_GNU_CONFLICTSZ
    0x6fff_fdf7, // DT_GNU_LIBLISTSZ
    0x6fff_fdf8, // DT_CHECKSUM
    0x6fff_fdf9, // DT_PLTPADSZ
    0x6fff_fdfa, // DT_MOVEENT
    0x6fff_fdfb, // DT_MOVESZ
    0x6fff_fdfc, // DT_FEATURE_1
    0x6fff_fdfd, // DT_POSFLAG_1
    0x6fff_fdfe, // DT_SYMINSZ
    0x6fff_fdff, // DT_SYMINENT
    0x6fff_fff9, // DT_RELACOUNT
    0x6fff_fffa, // DT_RELCOUNT
    0x6fff_fffb, // DT_FLAGS_1
    0x6fff_fffd, // DT_VERDEFNUM
    0x6fff_ffff, // DT_VERNEEDNUM
];

/// (address tag, size tag) pairs, to give immovable tables their extent.
const SIZED_TAGS: &[(u64, u64)] = &[
    (7, 8),   // DT_RELA, DT_RELASZ
    (17, 18), // DT_REL, DT_RELSZ
    (23, 2),  // DT_JMPREL, DT_PLTRELSZ
    (25, 27), // DT_INIT_ARRAY, DT_INIT_ARRAYSZ
    (26, 28), // DT_FINI_ARRAY, DT_FINI_ARRAYSZ
    (32, 33), // DT_PREINIT_ARRAY, DT_PREINIT_ARRAYSZ
    (36, 35), // DT_RELR, DT_RELRSZ
];

/// A range of file bytes with a known meaning.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    /// File offset.
    pub off: u64,
    /// Size in the file.
    pub size: u64,
    /// Virtual address, for loaded objects.
    pub vaddr: Option<u64>,
    /// Required alignment.
    pub align: u64,
    /// Whether every referrer can be rewritten when it moves.
    pub movable: bool,
    /// Who names its location.
    pub refs: Vec<Referrer>,
}

impl Object {
    fn end(&self) -> u64 {
        self.off + self.size
    }
}

/// Overlapping objects, which move together.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// File offset of the first byte.
    pub start: u64,
    /// File offset after the last byte.
    pub end: u64,
    /// Virtual address of the first byte, when all members agree on one.
    pub vaddr: Option<u64>,
    /// The largest member alignment.
    pub align: u64,
    /// Whether the whole group can move.
    pub movable: bool,
    /// Indices into [`Layout::objects`].
    pub members: Vec<usize>,
}

impl Group {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// Every known object of a file, and the groups they form.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// All objects.
    pub objects: Vec<Object>,
    /// Groups, sorted by file offset and disjoint.
    pub groups: Vec<Group>,
    /// Whether section headers described the file (gaps between objects are
    /// then known to be free).
    pub has_sections: bool,
}

impl Layout {
    /// Whether every referrer of every member of `g` is in `repointed`:
    /// the group's bytes are no longer used by anything.
    pub fn is_dead(&self, g: &Group, repointed: &HashSet<Referrer>) -> bool {
        g.members.iter().all(|&m| self.object_dead(m, repointed))
    }

    /// Whether every referrer of object `m` is in `repointed`.
    pub fn object_dead(&self, m: usize, repointed: &HashSet<Referrer>) -> bool {
        self.objects[m].refs.iter().all(|r| repointed.contains(r))
    }

    /// Whether a live member of `g` is referred to by `r`.
    pub fn has_live(&self, g: &Group, r: Referrer, repointed: &HashSet<Referrer>) -> bool {
        g.members
            .iter()
            .any(|&m| self.objects[m].refs.contains(&r) && !self.object_dead(m, repointed))
    }
}

/// Collects the objects of `view` and groups them: what the segments,
/// the dynamic entries and the section headers point at.
pub(crate) fn analyze(view: &View<'_>, tables: &Tables) -> Layout {
    let mut objects = Objects::default();
    objects.segments(view);
    objects.dynamic_tables(view, tables);
    objects.sections(view);
    let objects = objects.0;
    let groups = group(&objects);
    Layout {
        objects,
        groups,
        has_sections: !view.shdrs.is_empty(),
    }
}

/// Objects as they are found; one at the same place as an earlier one
/// merges into it.
#[derive(Default)]
struct Objects(Vec<Object>);

impl Objects {
    fn add(&mut self, o: Object) {
        if o.size == 0 {
            return;
        }
        if let Some(same) = self
            .0
            .iter_mut()
            .find(|x| x.off == o.off && x.size == o.size)
        {
            same.movable &= o.movable;
            same.align = same.align.max(o.align);
            if same.vaddr.is_none() {
                same.vaddr = o.vaddr;
            } else if o.vaddr.is_some() && o.vaddr != same.vaddr {
                same.movable = false;
            }
            same.refs.extend(o.refs);
        } else {
            self.0.push(o);
        }
    }

    /// What the program headers name (`PT_LOAD` and friends aside).
    fn segments(&mut self, view: &View<'_>) {
        for (i, p) in view.phdrs.iter().enumerate() {
            let movable = match p.p_type {
                PT_LOAD | PT_PHDR | PT_NULL | PT_GNU_STACK => continue,
                PT_INTERP | PT_NOTE | PT_GNU_PROPERTY | PT_DYNAMIC => true,
                _ => false,
            };
            if view.check_range(p.p_offset, p.p_filesz, "segment").is_err() {
                // Not in the file: nothing of ours can be in its way.
                continue;
            }
            self.add(Object {
                off: p.p_offset,
                size: p.p_filesz,
                vaddr: Some(p.p_vaddr),
                align: p.p_align.max(1),
                movable,
                refs: vec![Referrer::Phdr(i)],
            });
        }
    }

    /// The tables the dynamic section points at, and anything else its
    /// address entries name (pinned: we cannot tell what uses it).
    fn dynamic_tables(&mut self, view: &View<'_>, tables: &Tables) {
        let movable_tables = [
            (DT_SYMTAB, tables.symtab),
            (DT_HASH, tables.hash),
            (DT_GNU_HASH, tables.gnu_hash),
            (DT_VERSYM, tables.versym),
            (DT_VERNEED, tables.verneed),
            (DT_VERDEF, tables.verdef),
        ];
        let word = view.codec.word();
        for (tag, t) in movable_tables {
            let Some(t) = t else { continue };
            // Sections are gone in stripped files: assume the natural alignment,
            // which tells padding from data in front of the table.
            let align = match tag {
                DT_VERSYM => 2,
                DT_HASH => 4,
                _ => word,
            };
            self.add(Object {
                off: t.offset,
                // Unknown extent: pin the start so nothing moves over it.
                size: t.size.unwrap_or(1),
                vaddr: Some(t.addr),
                align: if t.offset % align == 0 { align } else { 1 },
                movable: t.size.is_some(),
                refs: vec![Referrer::Tag(tag)],
            });
        }
        if let Some(s) = &view.dynstr {
            self.add(Object {
                off: s.offset,
                size: s.bytes.len() as u64,
                vaddr: Some(s.addr),
                align: 1,
                movable: true,
                refs: vec![Referrer::Tag(DT_STRTAB)],
            });
        }
        if let Some(d) = &view.dynamic {
            for &(tag, val) in &d.entries {
                if MOVABLE_TAGS.contains(&tag)
                    || VALUE_TAGS.contains(&tag)
                    || STRING_TAGS.contains(&tag)
                {
                    continue;
                }
                if is_mips(view) && tag == DT_MIPS_RLD_MAP_REL {
                    continue;
                }
                let size = SIZED_TAGS
                    .iter()
                    .find(|(a, _)| *a == tag)
                    .and_then(|(_, s)| d.get(*s))
                    .filter(|&s| s > 0)
                    .unwrap_or(1);
                let off = view
                    .addr_to_offset(val, size, "dynamic entry")
                    .or_else(|_| view.addr_to_offset(val, 1, "dynamic entry"));
                if let Ok(off) = off {
                    self.add(Object {
                        off,
                        size: size.min(view.file_len - off),
                        vaddr: Some(val),
                        align: 1,
                        movable: false,
                        refs: vec![Referrer::Tag(tag)],
                    });
                }
            }
        }
    }

    /// What the section headers describe.
    fn sections(&mut self, view: &View<'_>) {
        let interp_shdr = view.interp.as_ref().and_then(|i| i.shdr);
        for (i, s) in view.shdrs.iter().enumerate() {
            if i == 0 || s.sh_type == SHT_NULL || s.sh_type == SHT_NOBITS {
                continue;
            }
            let alloc = s.sh_flags & u64::from(SHF_ALLOC) != 0;
            // Notes are found through PT_NOTE; the dynamic tables only when the
            // dynamic section (or PT_DYNAMIC) points at them — any other copy
            // might be used through an address we cannot see.
            let table = matches!(
                s.sh_type,
                SHT_DYNSYM
                    | SHT_GNU_HASH
                    | SHT_HASH
                    | SHT_GNU_VERSYM
                    | SHT_GNU_VERNEED
                    | SHT_GNU_VERDEF
                    | SHT_DYNAMIC
                    | SHT_STRTAB
            );
            let pointed_at = self.0.iter().any(|o| o.off == s.sh_offset);
            let movable =
                alloc && (s.sh_type == SHT_NOTE || (table && pointed_at) || interp_shdr == Some(i));
            self.add(Object {
                off: s.sh_offset,
                size: s.sh_size,
                vaddr: alloc.then_some(s.sh_addr),
                align: s.sh_addralign.max(1),
                movable,
                refs: vec![Referrer::Shdr(i)],
            });
        }
    }
}

/// `DT_MIPS_RLD_MAP_REL`: relative to the address of its own dynamic entry.
pub(crate) const DT_MIPS_RLD_MAP_REL: u64 = 0x7000_0035;

/// Whether the file is for MIPS (where `DT_MIPS_RLD_MAP_REL` exists).
pub(crate) fn is_mips(view: &View<'_>) -> bool {
    matches!(view.machine(), 8 | 10)
}

fn group(objects: &[Object]) -> Vec<Group> {
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| (objects[i].off, objects[i].end()));
    let mut groups: Vec<Group> = Vec::new();
    for i in order {
        let o = &objects[i];
        match groups.last_mut() {
            Some(g) if o.off < g.end => {
                g.end = g.end.max(o.end());
                g.members.push(i);
            }
            _ => groups.push(Group {
                start: o.off,
                end: o.end(),
                vaddr: None,
                align: 1,
                movable: true,
                members: vec![i],
            }),
        }
    }
    for g in &mut groups {
        let mut vaddr: Option<u64> = None;
        let mut consistent = true;
        for &m in &g.members {
            let o = &objects[m];
            g.align = g.align.max(o.align);
            g.movable &= o.movable;
            match o.vaddr {
                None => consistent = false,
                Some(v) => {
                    let start = v.wrapping_sub(o.off - g.start);
                    if vaddr.is_some_and(|x| x != start) {
                        consistent = false;
                    }
                    vaddr = Some(start);
                }
            }
        }
        g.vaddr = if consistent { vaddr } else { None };
        g.movable &= g.vaddr.is_some();
    }
    groups
}

fn align_up(v: u64, a: u64) -> u64 {
    v.checked_next_multiple_of(a.max(1)).unwrap_or(u64::MAX)
}

/// The groups that must move so the program header table can grow by
/// `extra` bytes in place, or why it cannot.
pub(crate) fn room_after_phdrs(
    view: &View<'_>,
    layout: &Layout,
    extra: u64,
    repointed: &HashSet<Referrer>,
) -> Result<Vec<usize>, String> {
    let h = &view.header;
    let table = h.e_phoff;
    let table_end = table + u64::from(h.e_phnum) * view.codec.phdr_size();
    let new_end = table_end + extra;
    let load = view
        .phdrs
        .iter()
        .find(|p| {
            p.p_type == PT_LOAD && p.p_offset <= table && table_end <= p.p_offset + p.p_filesz
        })
        .ok_or("the program header table is not inside a loadable segment")?;
    if new_end > load.p_offset + load.p_filesz {
        return Err("the segment holding the program header table is too small".into());
    }
    let sh_end = h.e_shoff + u64::from(h.e_shnum) * view.codec.shdr_size();
    if h.e_shoff != 0 && h.e_shoff < new_end && table_end < sh_end {
        return Err("the section header table follows the program header table".into());
    }
    let mut moved = Vec::new();
    let mut pos = table_end;
    let mut covered = false;
    for (gi, g) in layout.groups.iter().enumerate() {
        if g.end <= table_end {
            continue;
        }
        if g.start < table_end {
            return Err("an object overlaps the program header table".into());
        }
        // Without section headers, a gap is known to be padding only when it
        // is exactly the alignment of what follows.
        if !layout.has_sections && g.start > pos && align_up(pos, g.align) < g.start {
            return Err("unknown bytes follow the program header table".into());
        }
        if g.start >= new_end {
            covered = true;
            break;
        }
        if !layout.is_dead(g, repointed) {
            if !g.movable {
                return Err(format!(
                    "the bytes at {:#x}..{:#x} after the program header table cannot be moved",
                    g.start, g.end
                ));
            }
            moved.push(gi);
        }
        pos = g.end;
        if pos >= new_end {
            covered = true;
            break;
        }
    }
    if !covered && !layout.has_sections {
        return Err("unknown bytes follow the program header table".into());
    }
    // Padding we step over must really be padding.
    {
        let bytes = view
            .read(
                table_end,
                new_end - table_end,
                "program header table growth",
            )
            .map_err(|e| e.to_string())?;
        for (i, b) in bytes.iter().enumerate() {
            let at = table_end + i as u64;
            let in_group = layout.groups.iter().any(|g| g.start <= at && at < g.end);
            if !in_group && *b != 0 {
                return Err("non-zero bytes of unknown use follow the program header table".into());
            }
        }
    }
    Ok(moved)
}

/// The last `PT_LOAD` if it is a tail segment made of known, movable objects
/// only — one this crate (or patchelf) appended earlier — with the groups it
/// holds. Rebuilding it instead of appending another keeps repeated edits
/// from growing the file without bound.
pub(crate) fn own_tail(view: &View<'_>, layout: &Layout) -> Option<(usize, Vec<usize>)> {
    let t = last_load_at_end(view)?;
    let p = &view.phdrs[t];
    if p.p_flags & PF_X != 0 {
        return None;
    }
    let (start, end) = (p.p_offset, p.p_offset + p.p_filesz);
    if view.header.e_shoff >= start && view.header.e_shoff < end {
        return None;
    }
    let mut inside = Vec::new();
    let mut pos = start;
    for (gi, g) in layout.groups.iter().enumerate() {
        if g.end <= start {
            continue;
        }
        if g.start < start || !g.movable {
            return None;
        }
        if g.start < pos || g.start - pos >= g.align.max(1) {
            return None;
        }
        inside.push(gi);
        pos = g.end;
    }
    (pos == end && !inside.is_empty()).then_some((t, inside))
}

/// The last `PT_LOAD` (by address) when new bytes can simply be appended to
/// it: it ends at the end of the file, has no `.bss` part and is writable.
pub(crate) fn extendable(view: &View<'_>) -> Option<usize> {
    let i = last_load_at_end(view)?;
    let p = &view.phdrs[i];
    (p.p_flags & (PF_R | PF_W) == (PF_R | PF_W)).then_some(i)
}

/// The last `PT_LOAD` (by address) when it ends at the end of the file, is
/// the last thing in the file, and has no `.bss` part.
fn last_load_at_end(view: &View<'_>) -> Option<usize> {
    let (i, p) = view
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == PT_LOAD)
        .max_by_key(|(_, p)| p.p_vaddr)?;
    let ends_file = p.p_offset.checked_add(p.p_filesz) == Some(view.file_len);
    let others_before = view
        .phdrs
        .iter()
        .enumerate()
        .all(|(j, q)| j == i || q.p_type != PT_LOAD || q.p_offset + q.p_filesz <= p.p_offset);
    (ends_file && others_before && p.p_filesz > 0 && p.p_filesz == p.p_memsz).then_some(i)
}
