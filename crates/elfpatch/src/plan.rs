//! The planner: a [`View`] plus requested [`Edits`] become a [`Plan`] — the
//! byte writes, the new tail and the new file length — without touching the
//! file.
//!
//! All edits of one file are planned together, so a file changes layout at
//! most once. The order of decisions:
//!
//! 1. the new dynamic entries (needed libraries, SONAME, RUNPATH/RPATH);
//! 2. where their strings go (the `strtab` module): in place when safe,
//!    else in a copy of `.dynstr`;
//! 3. whether `.dynamic` still fits (spare `DT_NULL` slots) and whether the
//!    interpreter still fits `PT_INTERP`;
//! 4. if anything must move, one tail at the end of the file: our own tail
//!    segment rebuilt, the last segment extended, or a new `PT_LOAD` (for
//!    which the program header table grows in place, moving the small
//!    tables right after it into the tail). When what follows the table
//!    cannot move, a shared library (never an executable) is shifted up by
//!    whole pages instead, addresses unchanged, and the freed start of the
//!    file holds the ELF header and a larger table, mapped by a `PT_LOAD` of
//!    its own;
//! 5. every referrer of every moved thing is rewritten, and the result is
//!    diffed against the file so that only changed bytes are written.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use goblin::elf::dynamic::{
    DF_1_NODEFLIB, DT_DEBUG, DT_FLAGS_1, DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB,
};
use goblin::elf::header::{
    EM_AARCH64, EM_LOONGARCH, EM_MIPS, EM_MIPS_RS3_LE, EM_PPC64, EM_SPARC, EM_SPARC32PLUS,
    EM_SPARCV9, ET_DYN,
};
use goblin::elf::program_header::{
    PF_R, PF_W, PF_X, PT_GNU_STACK, PT_LOAD, PT_NOTE, PT_NULL, PT_PHDR,
};
use goblin::elf::section_header::{SHF_ALLOC, SHT_NOTE, SHT_NULL, SHT_REL, SHT_RELA};
use goblin::elf::{ProgramHeader, SectionHeader};

use crate::error::{Malformed, Result, Unsupported};
use crate::ldcache::{self, NoteEdit};
use crate::segments::{self, Layout, Referrer, DT_MIPS_RLD_MAP_REL, MOVABLE_TAGS};
use crate::strtab::{self, Want};
use crate::symbols;
use crate::view::{Tables, View, STRING_TAGS};

/// The most address space left free before a new segment for the sake of
/// `eu-elflint` (see where the new segment's address is chosen).
const MAX_SYMBOL_GAP: u64 = 16 << 20;

/// What to do with the library search path (`DT_RUNPATH` / `DT_RPATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunpathEdit {
    /// Leave it alone.
    #[default]
    Keep,
    /// Replace it with this colon-separated list.
    Set(String),
    /// Append these colon-separated entries (those not already present).
    Add(String),
    /// Remove both `DT_RUNPATH` and `DT_RPATH`.
    Remove,
    /// Keep only the entries that are not absolute (`$ORIGIN/…`) and the
    /// directories that provide a still-unresolved `DT_NEEDED` library of
    /// the same machine; with `allowed_prefixes` non-empty, absolute
    /// entries must also start with one of them (patchelf's
    /// `--shrink-rpath --allowed-rpath-prefixes`).
    Shrink {
        /// Prefixes absolute entries must start with (empty: any).
        allowed_prefixes: Vec<String>,
    },
}

/// The edits to make to one file, all planned together.
///
/// `Default` is "change nothing"; set only the fields you need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// New interpreter (`PT_INTERP`), e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interpreter: Option<String>,
    /// What to do with the search path.
    pub runpath: RunpathEdit,
    /// Write `DT_RPATH` instead of `DT_RUNPATH`. Without it, like patchelf
    /// 0.19, a search-path edit turns an existing `DT_RPATH` into
    /// `DT_RUNPATH` (and with it, a `DT_RUNPATH` into `DT_RPATH`) — also when
    /// the value stays the same. The same value under the requested tag
    /// changes nothing.
    pub force_rpath: bool,
    /// Libraries to add as `DT_NEEDED` (before the existing ones, like
    /// patchelf; names already needed are skipped).
    pub add_needed: Vec<String>,
    /// Libraries whose `DT_NEEDED` entries are removed.
    pub remove_needed: Vec<String>,
    /// (old, new) `DT_NEEDED` renames; the `.gnu.version_r` file names
    /// follow.
    pub replace_needed: Vec<(String, String)>,
    /// New `DT_SONAME` (added when missing).
    pub soname: Option<String>,
    /// Page size for new segments; by default from `e_machine`
    /// ([`default_page_size`]).
    pub page_size: Option<u64>,
    /// New `EI_OSABI` (patchelf's `--set-os-abi`).
    pub os_abi: Option<u8>,
    /// Make the stack executable (`Some(true)`) or not (`Some(false)`):
    /// `PF_X` of `PT_GNU_STACK`.
    pub execstack: Option<bool>,
    /// Set `DF_1_NODEFLIB` in `DT_FLAGS_1` (added when missing): the loader
    /// then skips its default directories for this file's dependencies.
    pub no_default_lib: bool,
    /// Add a `DT_DEBUG` entry when there is none (debuggers find the
    /// loader's state through it).
    pub add_debug_tag: bool,
    /// Dynamic symbols whose version requirement is dropped (their
    /// `.gnu.version` entry becomes 1, "global"), like patchelf's
    /// `--clear-symbol-version`.
    pub clear_symbol_versions: Vec<String>,
    /// (old, new) names of dynamic symbols to rename; the hash tables are
    /// rebuilt (patchelf's `--rename-dynamic-symbols`).
    pub rename_symbols: Vec<(String, String)>,
    /// Record where the search path finds each needed library in a
    /// `.note.nixos.ldcache` note, for the NixOS loader (patchelf 0.19's
    /// `--build-resolution-cache`); see [`crate::ldcache`]. Built from the
    /// file as the other edits leave it. Edits that change the needed
    /// libraries or the search path remove an existing note.
    pub resolution_cache: bool,
}

impl Edits {
    /// Whether no edit is requested at all.
    pub fn is_empty(&self) -> bool {
        self.interpreter.is_none()
            && self.runpath == RunpathEdit::Keep
            && self.add_needed.is_empty()
            && self.remove_needed.is_empty()
            && self.replace_needed.is_empty()
            && self.soname.is_none()
            && self.os_abi.is_none()
            && self.execstack.is_none()
            && !self.no_default_lib
            && !self.add_debug_tag
            && self.clear_symbol_versions.is_empty()
            && self.rename_symbols.is_empty()
            && !self.resolution_cache
    }

    fn needs_dynamic(&self) -> bool {
        self.runpath != RunpathEdit::Keep
            || !self.add_needed.is_empty()
            || !self.remove_needed.is_empty()
            || !self.replace_needed.is_empty()
            || self.soname.is_some()
            || self.no_default_lib
            || self.add_debug_tag
            || !self.clear_symbol_versions.is_empty()
            || !self.rename_symbols.is_empty()
    }
}

/// The page size the loaders of `machine` assume: 64 KiB for AArch64, PPC64,
/// MIPS and LoongArch, 8 KiB for SPARC, 4 KiB otherwise.
pub fn default_page_size(machine: u16) -> u64 {
    match machine {
        EM_AARCH64 | EM_PPC64 | EM_MIPS | EM_MIPS_RS3_LE | EM_LOONGARCH => 0x10000,
        EM_SPARC | EM_SPARC32PLUS | EM_SPARCV9 => 0x2000,
        _ => 0x1000,
    }
}

/// One positioned write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// File offset.
    pub offset: u64,
    /// The bytes to put there.
    pub bytes: Vec<u8>,
}

/// The outcome of planning: writes inside the current file, new bytes at its
/// end, and the new length. An empty plan means the file stays as it is.
///
/// When `shift` is not zero (the last resort for a shared library whose
/// program header table cannot grow in place), the whole current contents
/// first move up by `shift` bytes; `writes` and `tail` are then positions
/// in the shifted file, and the writes cover all of `0..shift`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Writes inside the current file (only bytes that change), sorted.
    pub writes: Vec<Write>,
    /// New bytes starting at the current end of the (shifted) contents.
    pub tail: Option<Write>,
    /// How far the current contents move up before the writes (usually 0).
    pub shift: u64,
    /// The file's length before.
    pub old_len: u64,
    /// The file's length after.
    pub new_len: u64,
    /// Why [`Edits::resolution_cache`] wrote no note (patchelf warns).
    pub cache_skipped: Option<crate::ldcache::Skipped>,
}

impl Plan {
    /// Whether applying the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.tail.is_none()
            && self.shift == 0
            && self.new_len == self.old_len
    }

    /// Total number of bytes written, tail and shifted contents included.
    pub fn bytes_written(&self) -> u64 {
        let moved = if self.shift > 0 { self.old_len } else { 0 };
        moved
            + self
                .writes
                .iter()
                .chain(&self.tail)
                .map(|w| w.bytes.len() as u64)
                .sum::<u64>()
    }
}

/// What the planner asks of the file system: [`RunpathEdit::Shrink`] which
/// directories provide a library, [`Edits::resolution_cache`] which
/// libraries and `glibc-hwcaps` directories exist. Tests substitute their
/// own; [`Host`] is the real one.
pub trait Filesystem {
    /// The `e_machine` of the ELF file at `path`, if it is one.
    fn machine(&self, path: &Path) -> Option<u16>;
    /// Whether `path` can be opened for reading (`access(R_OK)`).
    fn readable(&self, path: &Path) -> bool;
    /// Whether `path` exists (`access(F_OK)`).
    fn exists(&self, path: &Path) -> bool;
}

/// The file system of this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl Filesystem for Host {
    fn machine(&self, path: &Path) -> Option<u16> {
        crate::probe_machine(path)
    }
    fn readable(&self, path: &Path) -> bool {
        std::fs::File::open(path).is_ok()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// How the planner reaches the file system.
pub type Probe<'p> = &'p dyn Filesystem;

/// A dynamic entry being planned.
#[derive(Debug, Clone)]
struct Entry {
    tag: u64,
    val: u64,
    /// A changed string value, placed later.
    new_str: Option<Vec<u8>>,
    /// Index in the original dynamic section.
    orig: Option<usize>,
}

/// What goes into the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Dynstr,
    Dynamic,
    Interp,
    /// The resolution-cache note.
    Note,
    Group(usize),
}

#[derive(Debug, Clone)]
struct Item {
    kind: ItemKind,
    size: u64,
    align: u64,
    /// For moved groups: the old offset, whose residue modulo `align` the
    /// new offset keeps (members inside may be aligned differently).
    congruent: Option<u64>,
    off: u64,
    vaddr: u64,
}

impl Item {
    /// Point a section header at this item's new place, `size` bytes long.
    fn repoint_section(&self, sh: &mut SectionHeader, size: u64) {
        sh.sh_offset = self.off;
        sh.sh_addr = self.vaddr;
        sh.sh_size = size;
    }

    /// Point a segment (`PT_DYNAMIC`, `PT_INTERP`) and the section that
    /// describes the same bytes at this item's new place.
    fn repoint_segment(&self, ph: &mut ProgramHeader, sh: Option<&mut SectionHeader>) {
        ph.p_offset = self.off;
        ph.p_vaddr = self.vaddr;
        ph.p_paddr = self.vaddr;
        ph.p_filesz = self.size;
        ph.p_memsz = self.size;
        if let Some(sh) = sh {
            self.repoint_section(sh, self.size);
        }
    }
}

/// Where the tail goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Rebuild our earlier tail segment (program header index).
    Reuse(usize),
    /// Append to the last segment (program header index).
    Extend(usize),
    /// A new `PT_LOAD`, in place of a `PT_NULL` entry or in a grown table.
    New { replace_null: Option<usize> },
    /// A shared library whose program header table cannot grow in place:
    /// the whole file moves up by `by` bytes (whole pages, addresses
    /// unchanged), the freed space at the start holds the ELF header and a
    /// larger table, mapped by a new `PT_LOAD`, and the tail gets another.
    Shift { by: u64 },
}

/// Plans `edits` for the file `view` describes, in named phases:
///
/// 1. `dynamic_entries`: the new dynamic entries;
/// 2. `Strings::place`: where new strings go, symbol renames, what the
///    edits abandon;
/// 3. `Strings::interpreter`: the interpreter, in place or moved;
/// 4. `choose_target`: where the tail goes and what moves into it;
/// 5. `Draft::place_tail`, `Draft::repoint`, `Draft::add_segment`,
///    `Draft::follow_symbols`: the tail laid out, every referrer of what
///    moved rewritten, the segment that maps it, symbols that follow;
/// 6. `Draft::mips_fixups` and `Draft::serialise`: the writes.
pub fn plan(view: &View<'_>, edits: &Edits, probe: Probe<'_>) -> Result<Plan> {
    validate(edits)?;
    let page = match edits.page_size {
        Some(p) if !p.is_power_of_two() => return Err(Unsupported::BadPageSize(p).into()),
        Some(p) => p,
        None => default_page_size(view.machine()),
    };
    if edits.needs_dynamic() && view.dynamic.is_none() {
        return Err(Unsupported::NoDynamic.into());
    }
    let mut entries = dynamic_entries(view, edits, probe);
    // Read (and check) the tables for every edit: a file whose version
    // records or hash table are broken is refused before anything is
    // written, whatever the edit.
    let tables = view.tables()?;
    let (note, cache_skipped) = note_edit(view, edits, &entries, probe)?;
    let mut strings = Strings::place(view, edits, &mut entries, &tables)?;
    strings.interpreter(view, edits)?;
    let mut content = strings.content_writes(view, &tables, edits)?;
    if let Some(old) = note.old() {
        // Its descriptor names store paths: cleared like any abandoned string.
        content.insert(0, (old.offset, vec![0; old.size as usize]));
    }
    let stack = StackHeader::of(view, edits)?;
    let chosen = choose_target(view, &tables, &strings, &entries, page, &stack, &note)?;
    let mut draft = Draft::new(view, &entries, edits, &stack, &note)?;
    if let Some(c) = &chosen {
        draft.shift_for(view, c, page, &mut content);
        let placed = draft.place_tail(view, &tables, c, page)?;
        draft.repoint(view, c, &strings)?;
        draft.add_segment(view, c, &placed)?;
        draft.follow_symbols(view, &mut content)?;
    }
    draft.mips_fixups(view, &entries);
    let mut plan = draft.serialise(view, edits, chosen.as_ref(), &strings, content, &note)?;
    plan.cache_skipped = cache_skipped;
    Ok(plan)
}

/// The resolution-cache note after the other edits (phase 1's result).
fn note_edit(
    view: &View<'_>,
    edits: &Edits,
    entries: &[Entry],
    probe: Probe<'_>,
) -> Result<(NoteEdit, Option<ldcache::Skipped>)> {
    let after = |tag| -> Vec<&[u8]> {
        entries
            .iter()
            .filter(|e| e.tag == tag)
            .filter_map(|e| current(view, e))
            .collect()
    };
    let path_after = after(DT_RUNPATH)
        .first()
        .or(after(DT_RPATH).first())
        .copied();
    let path_before = view
        .dyn_strings(DT_RUNPATH)
        .first()
        .or(view.dyn_strings(DT_RPATH).first())
        .copied();
    let path_dropped = match edits.runpath {
        RunpathEdit::Remove => true,
        RunpathEdit::Shrink { .. } => path_before.is_none(),
        _ => false,
    };
    let deps = ldcache::Deps {
        needed_before: view.dyn_strings(DT_NEEDED),
        needed_after: after(DT_NEEDED),
        path_before,
        path_after,
        path_dropped,
    };
    ldcache::decide(view, edits.resolution_cache, &deps, probe)
}

/// The `PT_NOTE` (and a `PT_LOAD` of its own, as patchelf writes it) that
/// name exactly the bytes of an old note.
fn note_headers(view: &View<'_>, old: &ldcache::Existing) -> (Option<usize>, Option<usize>) {
    let names = |t| {
        view.phdrs.iter().position(|p: &ProgramHeader| {
            p.p_type == t && p.p_offset == old.offset && p.p_filesz == old.size
        })
    };
    (names(PT_NOTE), names(PT_LOAD))
}

/// How many bytes a new note's section needs before the tail: the grown
/// section-name table and section header table go between the old end of
/// the file and the tail, so that the tail still ends the file (later
/// edits rebuild it in place).
fn section_prelude(view: &View<'_>, note: &NoteEdit) -> Result<u64> {
    let counted = usize::from(view.header.e_shnum) == view.shdrs.len();
    let (NoteEdit::Add(_), Some(names), true) = (note, view.shstrtab_index(), counted) else {
        return Ok(0);
    };
    let names = view.shdrs[names].sh_size + ldcache::SECTION_NAME.len() as u64 + 1;
    let word = view.codec.word();
    Ok(names.next_multiple_of(word) + (view.shdrs.len() as u64 + 1) * view.codec.shdr_size())
}

/// How the note's `PT_NOTE` is reached: an old one repointed, or a new one.
fn note_header_reused(view: &View<'_>, note: &NoteEdit) -> Option<Option<usize>> {
    match note {
        NoteEdit::Add(_) => Some(None),
        NoteEdit::Replace(old, _) => Some(note_headers(view, old).0),
        _ => None,
    }
}

/// Phase 1: the dynamic entries after the edits (strings still unplaced).
fn dynamic_entries(view: &View<'_>, edits: &Edits, probe: Probe<'_>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = view.dynamic.as_ref().map_or_else(Vec::new, |d| {
        d.entries
            .iter()
            .enumerate()
            .map(|(i, &(tag, val))| Entry {
                tag,
                val,
                new_str: None,
                orig: Some(i),
            })
            .collect()
    });
    edit_needed(view, &mut entries, edits);
    edit_soname(view, &mut entries, edits);
    edit_runpath(view, &mut entries, edits, probe);
    edit_flags(&mut entries, edits);
    entries
}

/// Phases 2 and 3: strings, the interpreter, and what the edits abandon.
struct Strings {
    /// Writes of content (strings in place, symbol tables, versions).
    content: Vec<(u64, Vec<u8>)>,
    /// Ranges the edits stop using, cleared before anything else is written.
    abandoned: Vec<(u64, Vec<u8>)>,
    /// The new `.dynstr`, when strings had to be appended.
    dynstr_copy: Option<Vec<u8>>,
    /// The new interpreter, when it does not fit in place.
    new_interp: Option<Vec<u8>>,
}

impl Strings {
    /// Phase 2: place new strings (dynamic entries, renamed symbols) and
    /// rebuild what renaming symbols changes.
    fn place(
        view: &View<'_>,
        edits: &Edits,
        entries: &mut [Entry],
        tables: &Tables,
    ) -> Result<Strings> {
        let any_new_string = entries.iter().any(|e| e.new_str.is_some());
        let renames = symbols::renames(view, tables, &edits.rename_symbols)?;
        let sym_names: Vec<Vec<u8>> = renames.iter().map(|(_, n)| n.clone()).collect();
        let (mut content, dynstr_placed, sym_offsets) = if any_new_string || !renames.is_empty() {
            place_strings(view, edits, entries, tables, &sym_names)?
        } else {
            (Vec::new(), None, Vec::new())
        };
        if !renames.is_empty() {
            let renamed: Vec<(usize, Vec<u8>, u64)> = renames
                .into_iter()
                .zip(sym_offsets)
                .map(|((i, name), off)| (i, name, off))
                .collect();
            content.extend(symbols::rebuild(view, tables, &renamed)?);
        }
        // Bytes an edit abandons are cleared (first, so that anything
        // written there later wins): Nix scans every byte for store paths.
        let mut abandoned: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut dynstr_copy = None;
        if let Some((copy, old)) = dynstr_placed {
            if let Some(t) = &view.dynstr {
                abandoned.extend(old.into_iter().map(|(o, b)| (t.offset + o, b)));
            }
            dynstr_copy = Some(copy);
        }
        Ok(Strings {
            content,
            abandoned,
            dynstr_copy,
            new_interp: None,
        })
    }

    /// Phase 3: the interpreter, in place (padded with NULs) or moved.
    fn interpreter(&mut self, view: &View<'_>, edits: &Edits) -> Result<()> {
        let Some(want) = &edits.interpreter else {
            return Ok(());
        };
        let interp = view.interp.as_ref().ok_or(Unsupported::NoInterpreter)?;
        if want.as_bytes() == interp.value {
            return Ok(());
        }
        let p = &view.phdrs[interp.phdr];
        let mut bytes = want.as_bytes().to_vec();
        bytes.push(0);
        if bytes.len() as u64 <= p.p_filesz {
            bytes.resize(p.p_filesz as usize, 0);
            self.content.push((p.p_offset, bytes));
        } else {
            self.abandoned
                .push((p.p_offset, vec![0; p.p_filesz as usize]));
            self.new_interp = Some(bytes);
        }
        Ok(())
    }

    /// Every content write, abandoned ranges first.
    fn content_writes(
        &self,
        view: &View<'_>,
        tables: &Tables,
        edits: &Edits,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut content = self.abandoned.clone();
        content.extend(self.content.iter().cloned());
        content.extend(clear_symbol_versions(view, tables, edits)?);
        Ok(content)
    }
}

/// How `execstack` reaches `PT_GNU_STACK`.
enum StackHeader {
    /// Nothing to add: no execstack edit, or the header exists.
    None,
    /// The file has none: a `PT_NULL` entry becomes it.
    ReplaceNull(usize),
    /// The file has none and no spare entry: the table grows by it.
    Add(ProgramHeader),
}

impl StackHeader {
    fn of(view: &View<'_>, edits: &Edits) -> Result<StackHeader> {
        let Some(exec) = edits.execstack else {
            return Ok(StackHeader::None);
        };
        if view.phdrs.is_empty() {
            return Err(Unsupported::NoProgramHeaders.into());
        }
        if view.phdrs.iter().any(|p| p.p_type == PT_GNU_STACK) {
            return Ok(StackHeader::None);
        }
        Ok(match view.phdrs.iter().position(|p| p.p_type == PT_NULL) {
            Some(n) => StackHeader::ReplaceNull(n),
            None => StackHeader::Add(gnu_stack(exec)),
        })
    }
}

/// A `PT_GNU_STACK` as GNU ld writes it (patchelf's own has `p_align` 1).
fn gnu_stack(exec: bool) -> ProgramHeader {
    ProgramHeader {
        p_type: PT_GNU_STACK,
        p_flags: PF_R | PF_W | if exec { PF_X } else { 0 },
        p_offset: 0,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: 0,
        p_memsz: 0,
        p_align: 16,
    }
}

/// Where the tail goes and what goes into it.
struct Chosen {
    target: Target,
    /// File offset where the tail starts.
    base: u64,
    /// What the tail holds, in order.
    items: Vec<Item>,
    layout: Layout,
    /// Referrers pointed at the tail items (not moved with their groups).
    repointed: HashSet<Referrer>,
    /// The resolution cache's `PT_NOTE`: `Some(Some(i))` the old one
    /// repointed, `Some(None)` a new one.
    note_header: Option<Option<usize>>,
    /// The section header of a replaced note (repointed).
    note_section: Option<usize>,
}

/// Phase 4: the tail's target (our earlier tail, the last segment, a new
/// `PT_LOAD`, or a shift of the whole file) and its items. `None` when
/// nothing needs to move.
fn choose_target(
    view: &View<'_>,
    tables: &Tables,
    strings: &Strings,
    entries: &[Entry],
    page: u64,
    stack: &StackHeader,
    note: &NoteEdit,
) -> Result<Option<Chosen>> {
    let mut move_dynamic = dynamic_grows(view, entries);
    // A header to add makes the table grow: our tail and the last
    // segment cannot help with that.
    let new_note_header = note_header_reused(view, note) == Some(None);
    let extra = u64::from(matches!(stack, StackHeader::Add(_))) + u64::from(new_note_header);
    if strings.dynstr_copy.is_none()
        && strings.new_interp.is_none()
        && !move_dynamic
        && extra == 0
        && note.bytes().is_none()
    {
        return Ok(None);
    }
    let taken_null = match stack {
        StackHeader::ReplaceNull(n) => Some(*n),
        _ => None,
    };
    let layout = segments::analyze(view, tables);
    loop {
        let (items, repointed) = tail_items(view, strings, entries, move_dynamic, note)?;
        let want = Needs {
            extra,
            taken_null,
            page,
        };
        let (target, base, moved_groups) = pick_target(view, &layout, &repointed, &want, note)?;
        // Groups that move must not carry the live dynamic section: its
        // contents are re-serialised from `entries`, so it moves as an item.
        let carries_dynamic = view.dynamic.as_ref().is_some_and(|d| {
            let r = match (d.phdr, d.shdr) {
                (Some(p), _) => Referrer::Phdr(p),
                (None, Some(s)) => Referrer::Shdr(s),
                (None, None) => return false,
            };
            moved_groups
                .iter()
                .any(|&g| layout.has_live(&layout.groups[g], r, &repointed))
        });
        if !move_dynamic && carries_dynamic {
            move_dynamic = true;
            continue;
        }
        let mut all: Vec<Item> = moved_groups
            .iter()
            .map(|&g| {
                let grp = &layout.groups[g];
                Item {
                    kind: ItemKind::Group(g),
                    size: grp.size(),
                    align: grp.align.min(page),
                    congruent: Some(grp.start),
                    off: 0,
                    vaddr: 0,
                }
            })
            .collect();
        all.extend(items);
        return Ok(Some(Chosen {
            target,
            base,
            items: all,
            layout,
            repointed,
            note_header: note_header_reused(view, note),
            note_section: note
                .old()
                .filter(|_| note.bytes().is_some())
                .map(|o| o.shdr),
        }));
    }
}

/// What the tail holds besides moved groups (a new `.dynstr`, `.dynamic`,
/// interpreter, resolution-cache note), and the referrers that will point
/// at them.
fn tail_items(
    view: &View<'_>,
    strings: &Strings,
    entries: &[Entry],
    move_dynamic: bool,
    note: &NoteEdit,
) -> Result<(Vec<Item>, HashSet<Referrer>)> {
    let mut items = Vec::new();
    let mut repointed = HashSet::new();
    if let Some(copy) = &strings.dynstr_copy {
        items.push(item(ItemKind::Dynstr, copy.len() as u64, 1));
        repointed.insert(Referrer::Tag(DT_STRTAB));
        if let Some(s) = view.dynstr.as_ref().and_then(|t| t.shdr) {
            repointed.insert(Referrer::Shdr(s));
        }
    }
    if move_dynamic {
        let d = view.dynamic.as_ref().ok_or(Unsupported::NoDynamic)?;
        let size = (entries.len() as u64 + 1) * view.codec.dyn_size();
        items.push(item(ItemKind::Dynamic, size, view.codec.word()));
        repointed.extend(d.phdr.map(Referrer::Phdr));
        repointed.extend(d.shdr.map(Referrer::Shdr));
    }
    if let Some(bytes) = &strings.new_interp {
        let i = view.interp.as_ref().ok_or(Unsupported::NoInterpreter)?;
        items.push(item(ItemKind::Interp, bytes.len() as u64, 1));
        repointed.insert(Referrer::Phdr(i.phdr));
        repointed.extend(i.shdr.map(Referrer::Shdr));
    }
    if let Some(bytes) = note.bytes() {
        items.push(item(ItemKind::Note, bytes.len() as u64, 4));
        if let NoteEdit::Replace(old, _) = note {
            repointed.insert(Referrer::Shdr(old.shdr));
            repointed.extend(note_headers(view, old).0.map(Referrer::Phdr));
        }
    }
    Ok((items, repointed))
}

/// What the target must provide.
struct Needs {
    /// Program headers to add besides the tail's `PT_LOAD`.
    extra: u64,
    /// A `PT_NULL` entry already spoken for (it becomes `PT_GNU_STACK`).
    taken_null: Option<usize>,
    page: u64,
}

/// The target, where the tail starts, and the groups that move into it:
/// our own earlier tail rebuilt, the last writable segment extended, a
/// spare `PT_NULL` made a `PT_LOAD`, a grown table (groups behind it move),
/// or a shifted shared library.
fn pick_target(
    view: &View<'_>,
    layout: &Layout,
    repointed: &HashSet<Referrer>,
    want: &Needs,
    note: &NoteEdit,
) -> Result<(Target, u64, Vec<usize>)> {
    let grow = want.extra > 0;
    if let Some((t, inside)) = segments::own_tail(view, layout).filter(|_| !grow) {
        let moved = inside
            .into_iter()
            .filter(|&g| !layout.is_dead(&layout.groups[g], repointed))
            .collect();
        return Ok((Target::Reuse(t), view.phdrs[t].p_offset, moved));
    }
    if let Some(l) = segments::extendable(view).filter(|_| !grow) {
        return Ok((Target::Extend(l), view.file_len, Vec::new()));
    }
    let free_null = view
        .phdrs
        .iter()
        .enumerate()
        .position(|(i, p)| p.p_type == PT_NULL && Some(i) != want.taken_null)
        .filter(|_| !grow);
    if let Some(n) = free_null {
        let target = Target::New {
            replace_null: Some(n),
        };
        return Ok((target, view.file_len, Vec::new()));
    }
    let table_growth = (1 + want.extra) * view.codec.phdr_size();
    match segments::room_after_phdrs(view, layout, table_growth, repointed) {
        Ok(groups) => {
            let base = view.file_len + section_prelude(view, note)?;
            Ok((Target::New { replace_null: None }, base, groups))
        }
        Err(why) => {
            let by = shift_size(view, want.page, want.extra).ok_or_else(|| {
                Unsupported::NoRoomForProgramHeader(format!(
                    "{why}; only a shared library's file may be shifted \
                     to make room (the kernel wants an executable's \
                     table in its first segment)"
                ))
            })?;
            let base = view.file_len + by + section_prelude(view, note)?;
            Ok((Target::Shift { by }, base, Vec::new()))
        }
    }
}

/// Phases 5 and 6: the headers and dynamic entries as the plan changes
/// them, then the writes.
struct Draft {
    phdrs: Vec<ProgramHeader>,
    shdrs: Vec<SectionHeader>,
    entries_final: Vec<(u64, u64)>,
    phnum: u16,
    new_len: u64,
    /// Where `.dynamic` is now.
    dyn_vaddr: u64,
    /// How far the old contents move up in the file (`Target::Shift`).
    shift: u64,
    /// The `PT_LOAD` that maps the ELF header and the new table after a shift.
    header_segment: Option<ProgramHeader>,
    dynamic_moved: bool,
    /// The tail items, laid out.
    items: Vec<Item>,
    /// Program headers to add (a `PT_GNU_STACK` the file lacks, the
    /// resolution cache's `PT_NOTE`).
    extra: Vec<ProgramHeader>,
    /// The section header of a new resolution-cache note.
    new_section: Option<SectionHeader>,
    /// The section header of a note that is removed.
    dropped_section: Option<usize>,
}

/// Marks a program header the plan removes (compacted when serialised;
/// never a type in a file we write).
const DROPPED: u32 = 0xdead_0000;

/// The `PT_NOTE` of a note laid out as `it`.
fn note_phdr(it: &Item) -> ProgramHeader {
    ProgramHeader {
        p_type: PT_NOTE,
        p_flags: PF_R,
        p_offset: it.off,
        p_vaddr: it.vaddr,
        p_paddr: it.vaddr,
        p_filesz: it.size,
        p_memsz: it.size,
        p_align: 4,
    }
}

/// Where the tail was laid out.
struct TailPlace {
    base_vaddr: u64,
    seg_align: u64,
    tail_end: u64,
}

impl Draft {
    fn new(
        view: &View<'_>,
        entries: &[Entry],
        edits: &Edits,
        stack: &StackHeader,
        note: &NoteEdit,
    ) -> Result<Draft> {
        let mut phdrs = view.phdrs.clone();
        let mut extra = Vec::new();
        let mut dropped_section = None;
        if let Some(old) = note.old() {
            let (pt_note, pt_load) = note_headers(view, old);
            if let Some(l) = pt_load {
                phdrs[l].p_type = DROPPED;
            }
            if let NoteEdit::Remove(_) = note {
                if let Some(n) = pt_note {
                    phdrs[n].p_type = DROPPED;
                }
                dropped_section = Some(old.shdr);
            }
        }
        if let Some(exec) = edits.execstack {
            match stack {
                StackHeader::None => {
                    let stack = phdrs
                        .iter_mut()
                        .find(|p| p.p_type == PT_GNU_STACK)
                        .ok_or(Unsupported::NoGnuStack)?;
                    if exec {
                        stack.p_flags |= PF_X;
                    } else {
                        stack.p_flags &= !PF_X;
                    }
                }
                StackHeader::ReplaceNull(n) => phdrs[*n] = gnu_stack(exec),
                StackHeader::Add(h) => extra.push(h.clone()),
            }
        }
        if note_header_reused(view, note) == Some(None) {
            // Filled in once the note has its place.
            extra.push(ProgramHeader {
                p_type: PT_NOTE,
                ..Default::default()
            });
        }
        Ok(Draft {
            phdrs,
            shdrs: view.shdrs.clone(),
            entries_final: entries.iter().map(|e| (e.tag, e.val)).collect(),
            phnum: view.header.e_phnum,
            new_len: view.file_len,
            dyn_vaddr: view.dynamic.as_ref().map_or(0, |d| d.vaddr),
            shift: 0,
            header_segment: None,
            dynamic_moved: false,
            items: Vec::new(),
            extra,
            new_section: None,
            dropped_section,
        })
    }

    /// `Target::Shift`: every offset moves up; the old header table is
    /// replaced by one at the start, so it is cleared.
    fn shift_for(
        &mut self,
        view: &View<'_>,
        c: &Chosen,
        page: u64,
        content: &mut Vec<(u64, Vec<u8>)>,
    ) {
        if let Target::Shift { by } = c.target {
            self.shift = by;
            shift_offsets(&mut self.phdrs, &mut self.shdrs, by, page);
            let size = u64::from(view.header.e_phnum) * view.codec.phdr_size();
            content.insert(0, (view.header.e_phoff, vec![0; size as usize]));
        }
    }

    /// Offsets and addresses of the tail items.
    fn place_tail(
        &mut self,
        view: &View<'_>,
        tables: &Tables,
        c: &Chosen,
        page: u64,
    ) -> Result<TailPlace> {
        let (target, base) = (c.target, c.base);
        // A new segment starts above every other one, on a boundary of the
        // page size and of the largest alignment the file was linked for,
        // so no two segments share a page whatever the runtime page size.
        let seg_align = self
            .phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_align.is_power_of_two())
            .map(|p| p.p_align)
            .fold(page, u64::max);
        let base_vaddr = match target {
            Target::Reuse(t) => view.phdrs[t].p_vaddr,
            Target::Extend(l) => view.phdrs[l].p_vaddr + (base - view.phdrs[l].p_offset),
            Target::New { .. } | Target::Shift { .. } => {
                let top = view
                    .phdrs
                    .iter()
                    .filter(|p| p.p_type == PT_LOAD)
                    .map(|p| p.p_vaddr.saturating_add(p.p_memsz))
                    .max()
                    .unwrap_or(0);
                // `eu-elflint` takes a relocation to cover `st_size` bytes of
                // its symbol from `r_offset` on (a function's, for a PLT
                // slot) and reports a read-only segment starting inside that
                // span as a text relocation. Starting past the largest
                // symbol keeps our read-only tail out of every such span, at
                // the cost of unused address space only.
                let gap = view.largest_symbol_size(tables)?.min(MAX_SYMBOL_GAP);
                let too_large = Unsupported::TooLarge {
                    what: "virtual address",
                    value: top,
                };
                let mut start = top
                    .checked_add(gap)
                    .and_then(|t| t.checked_next_multiple_of(seg_align))
                    .ok_or(too_large.clone())?;
                if let Target::Shift { by } = target {
                    // The header segment maps file offset 0 here, the tail
                    // segment follows it.
                    self.header_segment = Some(ProgramHeader {
                        p_type: PT_LOAD,
                        p_flags: PF_R,
                        p_offset: 0,
                        p_vaddr: start,
                        p_paddr: start,
                        p_filesz: by,
                        p_memsz: by,
                        p_align: seg_align,
                    });
                    start = start
                        .checked_add(by)
                        .and_then(|t| t.checked_next_multiple_of(seg_align))
                        .ok_or(too_large.clone())?;
                }
                start.checked_add(base % seg_align).ok_or(too_large)?
            }
        };
        let too_large = |what, value| Unsupported::TooLarge { what, value };
        let mut cur = base;
        let mut items = c.items.clone();
        for it in &mut items {
            let a = it.align.max(1);
            let want = it.congruent.map_or(0, |orig| orig % a);
            let mut off = cur - cur % a + want;
            if off < cur {
                off += a;
            }
            it.off = off;
            it.vaddr = base_vaddr
                .checked_add(it.off - base)
                .ok_or(too_large("virtual address", base_vaddr))?;
            cur = it.off + it.size;
        }
        let tail_end = cur;
        let vaddr_end = base_vaddr
            .checked_add(tail_end - base)
            .ok_or(too_large("virtual address", base_vaddr))?;
        for (what, value) in [("file size", tail_end), ("virtual address", vaddr_end)] {
            if value > view.codec.max_addr() {
                return Err(too_large(what, value).into());
            }
        }
        self.items = items;
        Ok(TailPlace {
            base_vaddr,
            seg_align,
            tail_end,
        })
    }
    /// Every referrer of what moved now points at its new place.
    fn repoint(&mut self, view: &View<'_>, c: &Chosen, strings: &Strings) -> Result<()> {
        let (layout, repointed) = (&c.layout, &c.repointed);
        for it in &self.items {
            match it.kind {
                ItemKind::Dynstr => {
                    let t = view
                        .dynstr
                        .as_ref()
                        .ok_or(Malformed::MissingStrtab("new strings"))?;
                    let size = strings.dynstr_copy.as_ref().map_or(0, |c| c.len() as u64);
                    set_tag(&mut self.entries_final, DT_STRTAB, it.vaddr);
                    set_tag(&mut self.entries_final, DT_STRSZ, size);
                    if let Some(s) = t.shdr {
                        it.repoint_section(&mut self.shdrs[s], size);
                    }
                }
                ItemKind::Dynamic => {
                    let d = view.dynamic.as_ref().ok_or(Unsupported::NoDynamic)?;
                    match d.phdr {
                        Some(p) => it.repoint_segment(
                            &mut self.phdrs[p],
                            d.shdr.map(|s| &mut self.shdrs[s]),
                        ),
                        None => {
                            if let Some(s) = d.shdr {
                                it.repoint_section(&mut self.shdrs[s], it.size);
                            }
                        }
                    }
                    self.dyn_vaddr = it.vaddr;
                }
                ItemKind::Interp => {
                    let i = view.interp.as_ref().ok_or(Unsupported::NoInterpreter)?;
                    it.repoint_segment(&mut self.phdrs[i.phdr], i.shdr.map(|s| &mut self.shdrs[s]));
                }
                ItemKind::Note => {
                    let header = match c.note_header {
                        Some(Some(p)) => self.phdrs.get_mut(p),
                        _ => self.extra.iter_mut().find(|p| p.p_type == PT_NOTE),
                    };
                    if let Some(h) = header {
                        *h = note_phdr(it);
                    }
                    match c.note_section {
                        Some(s) => it.repoint_section(&mut self.shdrs[s], it.size),
                        None => {
                            self.new_section = Some(SectionHeader {
                                sh_type: SHT_NOTE,
                                sh_flags: u64::from(SHF_ALLOC),
                                sh_addr: it.vaddr,
                                sh_offset: it.off,
                                sh_size: it.size,
                                sh_addralign: 4,
                                ..Default::default()
                            })
                        }
                    }
                }
                ItemKind::Group(g) => {
                    // Each referrer belongs to exactly one object, so nothing
                    // is shifted twice; repointed ones already point elsewhere.
                    let grp = &layout.groups[g];
                    let old_vaddr = grp.vaddr.unwrap_or(0);
                    let dv = it.vaddr.wrapping_sub(old_vaddr);
                    let doff = it.off.wrapping_sub(grp.start);
                    let vrange = old_vaddr..old_vaddr.saturating_add(grp.size());
                    for &m in &grp.members {
                        for r in &layout.objects[m].refs {
                            if repointed.contains(r) {
                                continue;
                            }
                            match *r {
                                Referrer::Phdr(i) => {
                                    let p = &mut self.phdrs[i];
                                    p.p_offset = p.p_offset.wrapping_add(doff);
                                    p.p_vaddr = p.p_vaddr.wrapping_add(dv);
                                    p.p_paddr = p.p_paddr.wrapping_add(dv);
                                }
                                Referrer::Shdr(i) => {
                                    let s = &mut self.shdrs[i];
                                    s.sh_offset = s.sh_offset.wrapping_add(doff);
                                    s.sh_addr = s.sh_addr.wrapping_add(dv);
                                }
                                Referrer::Tag(tag) if MOVABLE_TAGS.contains(&tag) => {
                                    for e in self.entries_final.iter_mut().filter(|e| e.0 == tag) {
                                        if vrange.contains(&e.1) {
                                            e.1 = e.1.wrapping_add(dv);
                                        }
                                    }
                                }
                                Referrer::Tag(_) => {}
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The segment that maps the tail: writable only when it holds
    /// `.dynamic` (the loader writes DT_DEBUG there).
    fn add_segment(&mut self, view: &View<'_>, c: &Chosen, placed: &TailPlace) -> Result<()> {
        let (base, tail_end) = (c.base, placed.tail_end);
        let (base_vaddr, seg_align) = (placed.base_vaddr, placed.seg_align);
        let seg_size = |off: u64| tail_end - off;
        let flags = if self.items.iter().any(|i| i.kind == ItemKind::Dynamic) {
            PF_R | PF_W
        } else {
            PF_R
        };
        let phdrs = &mut self.phdrs;
        match c.target {
            Target::Reuse(t) => {
                let off = phdrs[t].p_offset;
                phdrs[t].p_filesz = seg_size(off);
                phdrs[t].p_memsz = seg_size(off);
                phdrs[t].p_flags = flags;
            }
            Target::Extend(t) => {
                let off = phdrs[t].p_offset;
                phdrs[t].p_filesz = seg_size(off);
                phdrs[t].p_memsz = seg_size(off);
            }
            Target::New { replace_null } => {
                let load = tail_load(flags, base, base_vaddr, seg_size(base), seg_align);
                match replace_null {
                    Some(n) => {
                        phdrs.remove(n);
                    }
                    None => {
                        // Nothing moved (the table had room): no segment to map.
                        let load_needed = !self.items.is_empty();
                        let added = u16::from(load_needed) + self.extra.len() as u16;
                        self.phnum = self
                            .phnum
                            .checked_add(added)
                            .filter(|&n| n < 0xffff)
                            .ok_or(Unsupported::NoRoomForProgramHeader(
                                "too many program headers".into(),
                            ))?;
                        let grown = u64::from(added) * view.codec.phdr_size();
                        for p in phdrs.iter_mut().filter(|p| p.p_type == PT_PHDR) {
                            p.p_filesz = p.p_filesz.saturating_add(grown);
                            p.p_memsz = p.p_memsz.saturating_add(grown);
                        }
                    }
                }
                let after_last_load = after_last_load(phdrs);
                if replace_null.is_some() || !self.items.is_empty() {
                    phdrs.insert(after_last_load, load);
                }
                phdrs.append(&mut self.extra);
            }
            Target::Shift { .. } => {
                let header =
                    self.header_segment
                        .clone()
                        .ok_or(Unsupported::NoRoomForProgramHeader(
                            "no address for the header segment".into(),
                        ))?;
                let load = tail_load(flags, base, base_vaddr, seg_size(base), seg_align);
                let after_last_load = after_last_load(phdrs);
                let header_vaddr = header.p_vaddr;
                phdrs.splice(after_last_load..after_last_load, [header, load]);
                phdrs.append(&mut self.extra);
                self.phnum = u16::try_from(phdrs.len())
                    .ok()
                    .filter(|&n| n < 0xffff)
                    .ok_or(Unsupported::NoRoomForProgramHeader(
                        "too many program headers".into(),
                    ))?;
                let table = u64::from(self.phnum) * view.codec.phdr_size();
                for p in phdrs.iter_mut().filter(|p| p.p_type == PT_PHDR) {
                    p.p_offset = view.codec.ehdr_size();
                    p.p_vaddr = header_vaddr + view.codec.ehdr_size();
                    p.p_paddr = p.p_vaddr;
                    p.p_filesz = table;
                    p.p_memsz = table;
                }
            }
        }
        self.new_len = tail_end;
        self.dynamic_moved = self.items.iter().any(|i| i.kind == ItemKind::Dynamic);
        Ok(())
    }

    /// Symbols defined in sections that moved follow them (`_DYNAMIC`
    /// always names the dynamic section, even when it was stale).
    fn follow_symbols(&mut self, view: &View<'_>, content: &mut Vec<(u64, Vec<u8>)>) -> Result<()> {
        let shdrs = &self.shdrs;
        let moved: HashSet<usize> = (0..shdrs.len())
            .filter(|&i| {
                shdrs[i].sh_addr != view.shdrs[i].sh_addr
                    && view.shdrs[i].sh_flags & u64::from(SHF_ALLOC) != 0
            })
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        let dynamic_section = view.dynamic.as_ref().and_then(|d| d.shdr);
        for sym in view.symbols_in(&moved, dynamic_section)? {
            let (old, new) = (&view.shdrs[sym.shndx], &shdrs[sym.shndx]);
            let value = if sym.is_dynamic {
                self.dyn_vaddr
            } else if (old.sh_addr..=old.sh_addr.saturating_add(old.sh_size)).contains(&sym.value) {
                sym.value
                    .wrapping_sub(old.sh_addr)
                    .wrapping_add(new.sh_addr)
            } else {
                continue;
            };
            let mut b = vec![0; view.codec.word() as usize];
            view.codec.put_uword(&mut b, 0, value);
            content.push((sym.field, b));
        }
        Ok(())
    }

    /// Removes the program headers marked [`DROPPED`]; returns how many.
    fn drop_headers(&mut self, view: &View<'_>) -> usize {
        let before = self.phdrs.len();
        self.phdrs.retain(|p| p.p_type != DROPPED);
        let dropped = before - self.phdrs.len();
        if dropped > 0 {
            self.phnum -= dropped as u16;
            let size = dropped as u64 * view.codec.phdr_size();
            for p in self.phdrs.iter_mut().filter(|p| p.p_type == PT_PHDR) {
                p.p_filesz = p.p_filesz.saturating_sub(size);
                p.p_memsz = p.p_memsz.saturating_sub(size);
            }
        }
        dropped
    }

    /// The section header table's writes: changed entries in place, or,
    /// when a section is added or removed, the table rewritten (a grown
    /// one, with a grown name table, after everything else).
    fn section_table(
        &mut self,
        view: &View<'_>,
        e_shoff: u64,
        shift: u64,
        content: &mut Vec<(u64, Vec<u8>)>,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<()> {
        let size = view.codec.shdr_size();
        let counted = usize::from(view.header.e_shnum) == view.shdrs.len();
        if let (Some(k), true) = (self.dropped_section, counted) {
            self.remove_section(view, k, shift, content, out)?;
            for (i, s) in self.shdrs.iter().enumerate() {
                if i >= k || *s != view.shdrs[i] {
                    out.push((e_shoff + i as u64 * size, view.codec.shdr_bytes(s)));
                }
            }
            let last = self.shdrs.len() as u64;
            out.push((e_shoff + last * size, vec![0; size as usize]));
            return Ok(());
        }
        for (i, s) in self.shdrs.iter().enumerate() {
            if *s != view.shdrs[i] {
                out.push((e_shoff + i as u64 * size, view.codec.shdr_bytes(s)));
            }
        }
        let (Some(mut new), Some(names_at), true) =
            (self.new_section.take(), view.shstrtab_index(), counted)
        else {
            return Ok(());
        };
        let names_sh = &view.shdrs[names_at];
        let mut names = view.read(names_sh.sh_offset, names_sh.sh_size, "section name table")?;
        new.sh_name = names.len();
        names.extend_from_slice(ldcache::SECTION_NAME.as_bytes());
        names.push(0);
        // Between the old end and the tail (see `section_prelude`).
        let names_off = view.file_len + shift;
        let table_off = names_off + (names.len() as u64).next_multiple_of(view.codec.word());
        self.shdrs[names_at].sh_offset = names_off;
        self.shdrs[names_at].sh_size = names.len() as u64;
        self.shdrs.push(new);
        let mut table = Vec::with_capacity(self.shdrs.len() * size as usize);
        for s in &self.shdrs {
            table.extend(view.codec.shdr_bytes(s));
        }
        out.push((names_off, names));
        out.push((table_off, table));
        let mut ehdr = vec![0; view.codec.ehdr_size() as usize];
        let phoff = if shift > 0 {
            view.codec.ehdr_size()
        } else {
            view.header.e_phoff
        };
        view.codec.put_ehdr_offsets(&mut ehdr, phoff, table_off);
        let (shoff_at, width) = if view.codec.is64 { (40, 8) } else { (32, 4) };
        out.push((shoff_at, ehdr[shoff_at as usize..][..width].to_vec()));
        out.push(half(
            view,
            view.codec.e_shnum_offset(),
            self.shdrs.len() as u16,
        ));
        Ok(())
    }

    /// Drops section `k`: later indices move down in the header, in
    /// `sh_link`/`sh_info` and in the symbols defined after it.
    fn remove_section(
        &mut self,
        view: &View<'_>,
        k: usize,
        shift: u64,
        content: &mut Vec<(u64, Vec<u8>)>,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<()> {
        let names = view.shstrtab_index();
        if names == Some(k) {
            return Err(Malformed::BadField {
                field: "e_shstrndx (names the resolution cache note)",
                value: k as u64,
            }
            .into());
        }
        self.shdrs.remove(k);
        let renumber = |v: u32| match (v as usize).cmp(&k) {
            std::cmp::Ordering::Less => v,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => v - 1,
        };
        for s in &mut self.shdrs {
            s.sh_link = renumber(s.sh_link);
            if s.sh_type == SHT_REL || s.sh_type == SHT_RELA {
                s.sh_info = renumber(s.sh_info);
            }
        }
        if let Some(n) = names.filter(|&n| n > k && view.header.e_shstrndx != 0xffff) {
            out.push(half(view, view.codec.e_shstrndx_offset(), (n - 1) as u16));
        }
        out.push(half(
            view,
            view.codec.e_shnum_offset(),
            self.shdrs.len() as u16,
        ));
        // Symbols defined in later sections (below SHN_LORESERVE).
        let later: HashSet<usize> = (k + 1..view.shdrs.len().min(0xff00)).collect();
        for sym in view.symbols_in(&later, None)? {
            let at = if view.codec.is64 {
                sym.field - 2
            } else {
                sym.field + 10
            };
            content.push(half(view, at + shift, (sym.shndx - 1) as u16));
        }
        Ok(())
    }

    /// MIPS: DT_MIPS_RLD_MAP_REL is relative to its own entry's address.
    fn mips_fixups(&mut self, view: &View<'_>, entries: &[Entry]) {
        if !segments::is_mips(view) {
            return;
        }
        let Some(d) = &view.dynamic else { return };
        let es = view.codec.dyn_size();
        for (idx, e) in entries.iter().enumerate() {
            if e.tag != DT_MIPS_RLD_MAP_REL {
                continue;
            }
            if let Some(o) = e.orig {
                let old_at = d.vaddr + o as u64 * es;
                let new_at = self.dyn_vaddr + idx as u64 * es;
                let mut v = self.entries_final[idx]
                    .1
                    .wrapping_add(old_at)
                    .wrapping_sub(new_at);
                if !view.codec.is64 {
                    v &= 0xffff_ffff;
                }
                self.entries_final[idx].1 = v;
            }
        }
    }

    /// The writes: content first (moved groups copy it), then the tail, the
    /// headers and the dynamic section.
    fn serialise(
        mut self,
        view: &View<'_>,
        edits: &Edits,
        chosen: Option<&Chosen>,
        strings: &Strings,
        mut content: Vec<(u64, Vec<u8>)>,
        note: &NoteEdit,
    ) -> Result<Plan> {
        let mut structural: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut tail_buf: Vec<u8> = Vec::new();
        if let Some(
            c @ Chosen {
                target: Target::New { .. },
                ..
            },
        ) = chosen
        {
            // Groups moved out from behind the program header table leave
            // nothing behind (`.interp` names a store path), and the next
            // edit finds free space there. The table and the new copies
            // are written after this.
            for it in &self.items {
                if let ItemKind::Group(g) = it.kind {
                    let grp = &c.layout.groups[g];
                    structural.push((grp.start, vec![0; grp.size() as usize]));
                }
            }
        }
        if let Some(c) = chosen {
            tail_buf = vec![0; (self.new_len - c.base) as usize];
            for it in &self.items {
                let at = (it.off - c.base) as usize;
                let bytes = match it.kind {
                    ItemKind::Dynstr => strings.dynstr_copy.clone().unwrap_or_default(),
                    ItemKind::Dynamic => view
                        .codec
                        .dyn_bytes(&self.entries_final, self.entries_final.len() + 1),
                    ItemKind::Interp => strings.new_interp.clone().unwrap_or_default(),
                    ItemKind::Note => note.bytes().unwrap_or_default().to_vec(),
                    ItemKind::Group(g) => {
                        let grp = &c.layout.groups[g];
                        snapshot(view, &content, grp.start, grp.size())?
                    }
                };
                tail_buf[at..at + bytes.len()].copy_from_slice(&bytes);
            }
        }

        // After a shift, everything written where it was is written `shift`
        // bytes further; the ELF header is written anew at the start.
        let shift = self.shift;
        let mut e_phoff = view.header.e_phoff;
        let mut e_shoff = view.header.e_shoff;
        if shift > 0 {
            for w in &mut content {
                w.0 += shift;
            }
            e_phoff = view.codec.ehdr_size();
            if e_shoff != 0 {
                e_shoff += shift;
            }
            let mut ehdr = view.read(0, view.codec.ehdr_size(), "ELF header")?;
            view.codec.put_ehdr_offsets(&mut ehdr, e_phoff, e_shoff);
            structural.push((0, ehdr));
        }
        if let Some(abi) = edits.os_abi {
            if abi != view.osabi() {
                structural.push((u64::from(goblin::elf::header::EI_OSABI as u8), vec![abi]));
            }
        }
        let dropped = self.drop_headers(view);
        if self.phnum != view.header.e_phnum {
            structural.push(half(view, view.codec.e_phnum_offset(), self.phnum));
        }
        if self.phdrs != view.phdrs {
            let mut table = Vec::with_capacity(self.phdrs.len() * view.codec.phdr_size() as usize);
            for p in &self.phdrs {
                table.extend(view.codec.phdr_bytes(p));
            }
            if shift == 0 {
                // The slots of dropped headers, cleared.
                table.resize(table.len() + dropped * view.codec.phdr_size() as usize, 0);
            }
            structural.push((e_phoff, table));
        }
        self.section_table(view, e_shoff, shift, &mut content, &mut structural)?;
        if let Some(d) = &view.dynamic {
            if !self.dynamic_moved {
                let slots =
                    (d.entries.len().max(self.entries_final.len()) + 1).min(d.slots as usize);
                structural.push((
                    d.offset + shift,
                    view.codec.dyn_bytes(&self.entries_final, slots),
                ));
            }
        }
        if let Some(c) = chosen {
            structural.push((c.base, tail_buf));
        }
        let mut writes = content;
        writes.extend(structural);
        finish(view, writes, self.new_len, shift)
    }
}

/// The `PT_LOAD` that maps the tail.
fn tail_load(flags: u32, offset: u64, vaddr: u64, size: u64, align: u64) -> ProgramHeader {
    ProgramHeader {
        p_type: PT_LOAD,
        p_flags: flags,
        p_offset: offset,
        p_vaddr: vaddr,
        p_paddr: vaddr,
        p_filesz: size,
        p_memsz: size,
        p_align: align,
    }
}

/// Where a new `PT_LOAD` goes: after the last one (loads stay sorted).
fn after_last_load(phdrs: &[ProgramHeader]) -> usize {
    phdrs
        .iter()
        .rposition(|p| p.p_type == PT_LOAD)
        .map_or(phdrs.len(), |i| i + 1)
}

/// A write of one 16-bit field (`e_phnum`, `e_shnum`, `st_shndx`, …).
fn half(view: &View<'_>, offset: u64, value: u16) -> (u64, Vec<u8>) {
    let mut b = vec![0u8; 2];
    view.codec.put_u16(&mut b, 0, value);
    (offset, b)
}

/// How far a shared library's contents must move up to make room for the
/// ELF header and a table with two more entries at its start (whole pages),
/// or `None` when the file may not be shifted: executables (anything with
/// `PT_INTERP`) need their table inside the first segment, where kernels
/// before Linux 5.18 look for it; shared libraries are mapped by the
/// dynamic loader, which finds the table through the `PT_LOAD` holding it.
fn shift_size(view: &View<'_>, page: u64, extra: u64) -> Option<u64> {
    if view.file_type() != ET_DYN || view.interp.is_some() {
        return None;
    }
    let entries = u64::from(view.header.e_phnum) + 2 + extra;
    let need = view.codec.ehdr_size() + entries * view.codec.phdr_size();
    need.checked_next_multiple_of(page)
}

/// Moves every file offset up by `by` (a multiple of `page`); addresses stay.
/// A `PT_LOAD` aligned more coarsely than `by` is realigned to `page`, which
/// keeps `p_offset ≡ p_vaddr` modulo its `p_align`.
fn shift_offsets(phdrs: &mut [ProgramHeader], shdrs: &mut [SectionHeader], by: u64, page: u64) {
    for p in phdrs.iter_mut() {
        // PT_GNU_STACK and the like name no bytes at all.
        if p.p_type != PT_LOAD && p.p_offset == 0 && p.p_filesz == 0 {
            continue;
        }
        // Offsets of segments nothing maps were never checked: garbage
        // stays garbage, without overflowing.
        p.p_offset = p.p_offset.wrapping_add(by);
        if p.p_type == PT_LOAD && p.p_align > page && by % p.p_align != 0 {
            p.p_align = page;
        }
    }
    for s in shdrs.iter_mut().skip(1) {
        if s.sh_type != SHT_NULL {
            s.sh_offset = s.sh_offset.wrapping_add(by);
        }
    }
}

/// Content writes, and the new `.dynstr` with the old one's abandoned
/// ranges when strings had to be appended, and the offsets of the new
/// symbol names.
type Placed = (
    Vec<(u64, Vec<u8>)>,
    Option<(Vec<u8>, Vec<(u64, Vec<u8>)>)>,
    Vec<u64>,
);

/// Places every new string (entries with `new_str`, and `.gnu.version_r`
/// file names that follow a renamed library), sets the entries' offsets, and
/// returns the writes into the existing table or the new copy.
fn place_strings(
    view: &View<'_>,
    edits: &Edits,
    entries: &mut [Entry],
    tables: &Tables,
    symbol_names: &[Vec<u8>],
) -> Result<Placed> {
    let mut content: Vec<(u64, Vec<u8>)> = Vec::new();
    let table = view
        .dynstr
        .as_ref()
        .ok_or(Malformed::MissingStrtab("new strings"))?;
    let mut refs = strtab::symbol_refs(view, tables)?;
    let mut wants: Vec<Want> = Vec::new();
    let mut user_of: Vec<Option<usize>> = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        match &e.new_str {
            Some(v) => {
                let w = want_index(&mut wants, v);
                if let Some(o) = e.orig {
                    let (tag, val) = view.dynamic.as_ref().map_or((0, 0), |d| d.entries[o]);
                    if STRING_TAGS.contains(&tag) {
                        wants[w].old.push(val);
                    }
                }
                user_of[i] = Some(w);
            }
            None if STRING_TAGS.contains(&e.tag) => refs.fixed.push(e.val),
            None => {}
        }
    }
    // .gnu.version_r names the needed files too; renames follow.
    let mut vn_users: Vec<(u64, usize)> = Vec::new();
    for vn in &tables.vn_files {
        let name = table.get(vn.name);
        let renamed = edits
            .replace_needed
            .iter()
            .find(|(old, new)| Some(old.as_bytes()) == name && old != new);
        match renamed {
            Some((_, new)) => {
                let w = want_index(&mut wants, new.as_bytes());
                wants[w].old.push(vn.name);
                vn_users.push((vn.field, w));
            }
            None => refs.fixed.push(vn.name),
        }
    }
    // New symbol names (renamed symbols keep their old names too).
    let sym_wants: Vec<usize> = symbol_names
        .iter()
        .map(|n| want_index(&mut wants, n))
        .collect();
    let placed = strtab::place(&table.bytes, &refs, &wants);
    let sym_offsets = sym_wants.iter().map(|&w| placed.offsets[w]).collect();
    for (i, e) in entries.iter_mut().enumerate() {
        if let Some(w) = user_of[i] {
            e.val = placed.offsets[w];
        }
    }
    for (field, w) in vn_users {
        let v = u32::try_from(placed.offsets[w]).map_err(|_| Unsupported::TooLarge {
            what: "string offset",
            value: placed.offsets[w],
        })?;
        let mut b = [0u8; 4];
        view.codec.put_u32(&mut b, 0, v);
        content.push((field, b.to_vec()));
    }
    for (off, bytes) in placed.patches {
        content.push((table.offset + off, bytes));
    }
    Ok((
        content,
        placed.copy.map(|c| (c, placed.abandoned)),
        sym_offsets,
    ))
}

/// The index of the [`Want`] for `value`, added when new.
fn want_index(wants: &mut Vec<Want>, value: &[u8]) -> usize {
    match wants.iter().position(|w| w.value == value) {
        Some(i) => i,
        None => {
            wants.push(Want {
                value: value.to_vec(),
                old: Vec::new(),
            });
            wants.len() - 1
        }
    }
}

fn item(kind: ItemKind, size: u64, align: u64) -> Item {
    Item {
        kind,
        size,
        align,
        congruent: None,
        off: 0,
        vaddr: 0,
    }
}

fn set_tag(entries: &mut [(u64, u64)], tag: u64, val: u64) {
    for e in entries.iter_mut().filter(|e| e.0 == tag) {
        e.1 = val;
    }
}

fn validate(edits: &Edits) -> Result<()> {
    let check = |what: &'static str, v: &str, may_be_empty: bool| -> Result<()> {
        let why = if v.contains('\0') {
            "contains a NUL byte"
        } else if v.is_empty() && !may_be_empty {
            "is empty"
        } else {
            return Ok(());
        };
        Err(Unsupported::BadValue {
            what,
            value: v.to_owned(),
            why,
        }
        .into())
    };
    if let Some(i) = &edits.interpreter {
        check("interpreter", i, false)?;
    }
    if let Some(s) = &edits.soname {
        check("SONAME", s, false)?;
    }
    match &edits.runpath {
        RunpathEdit::Set(s) | RunpathEdit::Add(s) => check("RUNPATH", s, true)?,
        _ => {}
    }
    for n in edits.add_needed.iter().chain(&edits.remove_needed) {
        check("needed library", n, false)?;
    }
    for (a, b) in &edits.replace_needed {
        check("needed library", a, false)?;
        check("needed library", b, false)?;
    }
    if edits.resolution_cache && edits.force_rpath {
        // The loader reads the cache in place of a DT_RUNPATH search; a
        // DT_RPATH also applies to the libraries' own dependencies.
        return Err(Unsupported::Combination(
            "the resolution cache cannot be built with --force-rpath",
        )
        .into());
    }
    Ok(())
}

fn dynamic_grows(view: &View<'_>, entries: &[Entry]) -> bool {
    view.dynamic
        .as_ref()
        .is_some_and(|d| entries.len() as u64 + 1 > d.slots)
}

/// The current string of an entry (its planned value, or the one in the file).
fn current<'v>(view: &'v View<'_>, e: &'v Entry) -> Option<&'v [u8]> {
    match &e.new_str {
        Some(s) => Some(s),
        None => view.dyn_string(e.val),
    }
}

/// Sets an entry's string; an entry that already holds `value` in the file
/// stays untouched (no new string to place).
fn set_string(view: &View<'_>, e: &mut Entry, value: &[u8]) {
    let in_file = e.orig.and_then(|_| view.dyn_string(e.val));
    e.new_str = (in_file != Some(value)).then(|| value.to_vec());
}

/// `.gnu.version` entries set to 1 (global) for the named dynamic symbols.
fn clear_symbol_versions(
    view: &View<'_>,
    tables: &Tables,
    edits: &Edits,
) -> Result<Vec<(u64, Vec<u8>)>> {
    if edits.clear_symbol_versions.is_empty() {
        return Ok(Vec::new());
    }
    let versym = tables
        .versym
        .as_ref()
        .ok_or(Unsupported::NoSymbolVersions)?;
    let mut writes = Vec::new();
    for (i, name) in symbols::names(view, tables)?.into_iter().enumerate() {
        if edits
            .clear_symbol_versions
            .iter()
            .any(|s| s.as_bytes() == name)
        {
            let mut b = vec![0u8; 2];
            view.codec.put_u16(&mut b, 0, 1);
            writes.push((versym.offset + 2 * i as u64, b));
        }
    }
    Ok(writes)
}

/// `no_default_lib` and `add_debug_tag`; like patchelf, a new entry goes
/// first (`DT_DEBUG`, then `DT_FLAGS_1`).
fn edit_flags(entries: &mut Vec<Entry>, edits: &Edits) {
    let numeric = |tag, val| Entry {
        tag,
        val,
        new_str: None,
        orig: None,
    };
    if edits.no_default_lib {
        match entries.iter_mut().find(|e| e.tag == DT_FLAGS_1) {
            Some(e) => e.val |= DF_1_NODEFLIB,
            None => entries.insert(0, numeric(DT_FLAGS_1, DF_1_NODEFLIB)),
        }
    }
    if edits.add_debug_tag && !entries.iter().any(|e| e.tag == DT_DEBUG) {
        entries.insert(0, numeric(DT_DEBUG, 0));
    }
}

fn new_entry(tag: u64, value: &[u8]) -> Entry {
    Entry {
        tag,
        val: 0,
        new_str: Some(value.to_vec()),
        orig: None,
    }
}

fn edit_needed(view: &View<'_>, entries: &mut Vec<Entry>, edits: &Edits) {
    for (old, new) in &edits.replace_needed {
        for e in entries.iter_mut().filter(|e| e.tag == DT_NEEDED) {
            if current(view, e) == Some(old.as_bytes()) {
                set_string(view, e, new.as_bytes());
            }
        }
    }
    entries.retain(|e| {
        e.tag != DT_NEEDED
            || !edits
                .remove_needed
                .iter()
                .any(|r| current(view, e) == Some(r.as_bytes()))
    });
    let mut added = Vec::new();
    for name in &edits.add_needed {
        let present = entries
            .iter()
            .filter(|e| e.tag == DT_NEEDED)
            .any(|e| current(view, e) == Some(name.as_bytes()))
            || added
                .iter()
                .any(|e: &Entry| e.new_str.as_deref() == Some(name.as_bytes()));
        if !present {
            added.push(new_entry(DT_NEEDED, name.as_bytes()));
        }
    }
    // Like patchelf: new dependencies come first.
    entries.splice(0..0, added);
}

/// Where a new SONAME or RUNPATH entry goes: after the needed libraries.
fn insert_position(entries: &[Entry]) -> usize {
    entries
        .iter()
        .rposition(|e| matches!(e.tag, DT_NEEDED | DT_SONAME | DT_RUNPATH | DT_RPATH))
        .map_or(0, |i| i + 1)
}

fn edit_soname(view: &View<'_>, entries: &mut Vec<Entry>, edits: &Edits) {
    let Some(name) = &edits.soname else { return };
    match entries.iter_mut().find(|e| e.tag == DT_SONAME) {
        Some(e) => set_string(view, e, name.as_bytes()),
        None => {
            let at = insert_position(entries);
            entries.insert(at, new_entry(DT_SONAME, name.as_bytes()));
        }
    }
}

fn split_path(s: &[u8]) -> Vec<&[u8]> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(|&b| b == b':').collect()
    }
}

fn edit_runpath(view: &View<'_>, entries: &mut Vec<Entry>, edits: &Edits, probe: Probe<'_>) {
    let find = |entries: &[Entry], tag| entries.iter().position(|e: &Entry| e.tag == tag);
    let current_path = |entries: &[Entry]| -> Option<Vec<u8>> {
        let i = find(entries, DT_RUNPATH).or_else(|| find(entries, DT_RPATH))?;
        current(view, &entries[i]).map(<[u8]>::to_vec)
    };
    let new_value: Vec<u8> = match &edits.runpath {
        RunpathEdit::Keep => return,
        RunpathEdit::Remove => {
            entries.retain(|e| e.tag != DT_RUNPATH && e.tag != DT_RPATH);
            return;
        }
        RunpathEdit::Set(s) => s.as_bytes().to_vec(),
        RunpathEdit::Add(s) => {
            if split_path(s.as_bytes()).is_empty() {
                return;
            }
            let old = current_path(entries).unwrap_or_default();
            let mut parts: Vec<&[u8]> = split_path(&old);
            for p in split_path(s.as_bytes()) {
                if !parts.contains(&p) {
                    parts.push(p);
                }
            }
            parts.join(&b':')
        }
        RunpathEdit::Shrink { allowed_prefixes } => {
            let Some(old) = current_path(entries) else {
                return;
            };
            let needed: Vec<Vec<u8>> = entries
                .iter()
                .filter(|e| e.tag == DT_NEEDED)
                .filter_map(|e| current(view, e).map(<[u8]>::to_vec))
                .collect();
            shrink(&old, &needed, allowed_prefixes, view.machine(), probe)
        }
    };
    let current = current_path(entries);
    let runpath = find(entries, DT_RUNPATH);
    let rpath = find(entries, DT_RPATH);
    // Like patchelf 0.19, the tag is part of the result: the same search
    // path under the other tag is still converted (DT_RPATH → DT_RUNPATH,
    // or the reverse with `force_rpath`); the same path under the right
    // tag is no change at all.
    if current.as_deref().unwrap_or_default() == new_value {
        match (edits.force_rpath, runpath, rpath) {
            (false, None, Some(p)) => entries[p].tag = DT_RUNPATH,
            (true, Some(r), p) => {
                entries[r].tag = DT_RPATH;
                if let Some(p) = p {
                    entries.remove(p);
                }
            }
            _ => {}
        }
        return;
    }
    if !edits.force_rpath {
        match (runpath, rpath) {
            (Some(r), p) => {
                set_string(view, &mut entries[r], &new_value);
                if let Some(p) = p {
                    set_string(view, &mut entries[p], &new_value);
                }
            }
            (None, Some(p)) => {
                entries[p].tag = DT_RUNPATH;
                set_string(view, &mut entries[p], &new_value);
            }
            (None, None) => {
                let at = insert_position(entries);
                entries.insert(at, new_entry(DT_RUNPATH, &new_value));
            }
        }
    } else {
        match (runpath, rpath) {
            (Some(r), p) => {
                entries[r].tag = DT_RPATH;
                set_string(view, &mut entries[r], &new_value);
                if let Some(p) = p {
                    entries.remove(p);
                }
            }
            (None, Some(p)) => set_string(view, &mut entries[p], &new_value),
            (None, None) => {
                let at = insert_position(entries);
                entries.insert(at, new_entry(DT_RPATH, &new_value));
            }
        }
    }
}

/// patchelf's `--shrink-rpath`: keep relative entries, and absolute
/// directories (with an allowed prefix) that hold a needed library of the
/// same machine not found in an earlier directory.
fn shrink(
    old: &[u8],
    needed: &[Vec<u8>],
    allowed: &[String],
    machine: u16,
    probe: Probe<'_>,
) -> Vec<u8> {
    let mut found = vec![false; needed.len()];
    let mut keep: Vec<&[u8]> = Vec::new();
    for dir in split_path(old) {
        if dir.first() != Some(&b'/') {
            keep.push(dir);
            continue;
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| dir.starts_with(a.as_bytes())) {
            continue;
        }
        let mut provides = false;
        for (j, lib) in needed.iter().enumerate() {
            if found[j] {
                continue;
            }
            let mut path = dir.to_vec();
            path.push(b'/');
            path.extend_from_slice(lib);
            let path = Path::new(std::ffi::OsStr::from_bytes(&path));
            if probe.machine(path) == Some(machine) {
                found[j] = true;
                provides = true;
            }
        }
        if provides {
            keep.push(dir);
        }
    }
    keep.join(&b':')
}

/// The bytes of `[off, off + len)` as the content writes left them.
fn snapshot(view: &View<'_>, content: &[(u64, Vec<u8>)], off: u64, len: u64) -> Result<Vec<u8>> {
    let mut bytes = view.read(off, len, "moved object")?;
    overlay(&mut bytes, off, content);
    Ok(bytes)
}

/// Applies `writes` (in order) to `buf`, which holds the bytes at `at`.
fn overlay(buf: &mut [u8], at: u64, writes: &[(u64, Vec<u8>)]) {
    let end = at + buf.len() as u64;
    for (off, bytes) in writes {
        let w_end = off + bytes.len() as u64;
        if w_end <= at || *off >= end {
            continue;
        }
        let s = off.max(&at);
        let e = w_end.min(end);
        buf[(s - at) as usize..(e - at) as usize]
            .copy_from_slice(&bytes[(s - off) as usize..(e - off) as usize]);
    }
}

/// Turns overlapping writes (later wins) into a minimal plan: only bytes that
/// differ from the file (moved up by `shift`), plus the new tail, plus all
/// of the `shift` bytes freed at the start.
fn finish(view: &View<'_>, writes: Vec<(u64, Vec<u8>)>, new_len: u64, shift: u64) -> Result<Plan> {
    let old_len = view.file_len;
    let old_end = old_len + shift;
    let inside_end = old_end.min(new_len);

    let tail = (new_len > old_end).then(|| {
        let mut buf = vec![0; (new_len - old_end) as usize];
        overlay(&mut buf, old_end, &writes);
        Write {
            offset: old_end,
            bytes: buf,
        }
    });

    let mut out = Vec::new();
    if shift > 0 {
        let mut head = vec![0; shift as usize];
        overlay(&mut head, 0, &writes);
        out.push(Write {
            offset: 0,
            bytes: head,
        });
    }
    let mut spans: Vec<(u64, u64)> = writes
        .iter()
        .map(|(o, b)| ((*o).max(shift), (o + b.len() as u64).min(inside_end)))
        .filter(|(s, e)| s < e)
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    for (s, e) in merged {
        let old = view.read(s - shift, e - s, "patched range")?;
        let mut new = old.clone();
        overlay(&mut new, s, &writes);
        diff_runs(&old, &new, s, &mut out);
    }
    Ok(Plan {
        writes: out,
        tail,
        shift,
        old_len,
        new_len,
        cache_skipped: None,
    })
}

/// Appends the runs where `new` differs from `old`, merging runs separated by
/// up to 64 equal bytes: a write costs a system call, which copying that
/// many unchanged bytes along does not.
fn diff_runs(old: &[u8], new: &[u8], at: u64, out: &mut Vec<Write>) {
    const GAP: usize = 64;
    let mut i = 0;
    while i < old.len() {
        if old[i] == new[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < old.len() && j - end <= GAP {
            if old[j] != new[j] {
                end = j + 1;
            }
            j += 1;
        }
        out.push(Write {
            offset: at + start as u64,
            bytes: new[start..end].to_vec(),
        });
        i = end;
    }
}
