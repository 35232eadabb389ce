//! A read-only view of the parts of an ELF file that dynamic linking uses.
//!
//! [`View::parse`] reads the ELF header, the program headers, the section
//! headers (when there are any), `PT_INTERP`, the dynamic section and the
//! dynamic string table — and nothing else: a 100 MB library costs as much to
//! parse as a 100 KB one. Every offset and size is checked against the file;
//! malformed input is a [`Malformed`] error, never a panic.
//!
//! Reads go through a [`ByteSource`], implemented for byte slices (tests,
//! fuzzing) and for files (positioned reads of the needed ranges only).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use goblin::elf::dynamic::{
    DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB,
};
use goblin::elf::header::{
    EI_CLASS, EI_DATA, EI_OSABI, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB,
};
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE};
use goblin::elf::section_header::{SHF_ALLOC, SHT_DYNAMIC, SHT_NOBITS, SHT_STRTAB};
use goblin::elf::{Elf, Header, ProgramHeader, SectionHeader};

use crate::codec::{Codec, Reader};
use crate::error::{Malformed, Result};

/// Dynamic tags whose value is an offset into the dynamic string table.
pub(crate) const STRING_TAGS: &[u64] = &[
    DT_NEEDED,
    DT_SONAME,
    DT_RPATH,
    DT_RUNPATH,
    0x7fff_fffd, // DT_AUXILIARY
    0x7fff_ffff, // DT_FILTER
    0x6fff_fefa, // DT_CONFIG
    0x6fff_fefb, // DT_DEPAUDIT
    0x6fff_fefc, // DT_AUDIT
];

/// Something ELF bytes can be read from at arbitrary offsets.
pub trait ByteSource {
    /// The total size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`; the range is within `size()`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// In-memory images: `&[u8]`, `Vec<u8>`, …
impl<T: AsRef<[u8]>> ByteSource for T {
    fn size(&self) -> u64 {
        self.as_ref().len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.as_ref().get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A file read with positioned reads (`pread`), never as a whole.
#[derive(Debug)]
pub struct FileBytes {
    file: File,
    len: u64,
}

impl FileBytes {
    /// Wraps an open file, remembering its current length.
    pub fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FileBytes { file, len })
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl ByteSource for FileBytes {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
}

/// The `PT_INTERP` segment.
#[derive(Debug, Clone)]
pub(crate) struct Interp {
    /// Index of the `PT_INTERP` program header.
    pub phdr: usize,
    /// The `.interp` section, when section headers describe it.
    pub shdr: Option<usize>,
    /// The interpreter path, without its NUL.
    pub value: Vec<u8>,
}

/// The dynamic section, as `PT_DYNAMIC` describes it (or, without one, the
/// `.dynamic` section header).
#[derive(Debug, Clone)]
pub(crate) struct Dynamic {
    /// Index of the `PT_DYNAMIC` program header; `None` when only the
    /// section headers describe it (a damaged program header table, which
    /// patchelf edits too).
    pub phdr: Option<usize>,
    /// The `.dynamic` section, when section headers describe it.
    pub shdr: Option<usize>,
    /// File offset.
    pub offset: u64,
    /// Virtual address.
    pub vaddr: u64,
    /// How many entries fit (including the terminating `DT_NULL`).
    pub slots: u64,
    /// The entries before the first `DT_NULL`, as (tag, value).
    pub entries: Vec<(u64, u64)>,
}

impl Dynamic {
    /// The value of the first entry with `tag`.
    pub fn get(&self, tag: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == tag).map(|e| e.1)
    }
}

/// The dynamic string table (`DT_STRTAB`/`DT_STRSZ`).
#[derive(Debug, Clone)]
pub(crate) struct Strtab {
    /// The `.dynstr` section, when section headers describe it.
    pub shdr: Option<usize>,
    /// File offset.
    pub offset: u64,
    /// Virtual address (`DT_STRTAB`).
    pub addr: u64,
    /// The whole table; its last byte is NUL.
    pub bytes: Vec<u8>,
}

impl Strtab {
    /// The string at `off` (without its NUL). Offsets were checked at parse
    /// time for dynamic entries; others are checked here.
    pub fn get(&self, off: u64) -> Option<&[u8]> {
        let start = usize::try_from(off).ok()?;
        let rest = self.bytes.get(start..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }
}

/// A parsed, read-only ELF file: headers, `PT_INTERP`, dynamic section and
/// dynamic string table.
pub struct View<'a> {
    src: &'a dyn ByteSource,
    pub(crate) codec: Codec,
    pub(crate) file_len: u64,
    pub(crate) header: Header,
    pub(crate) phdrs: Vec<ProgramHeader>,
    pub(crate) shdrs: Vec<SectionHeader>,
    pub(crate) interp: Option<Interp>,
    pub(crate) dynamic: Option<Dynamic>,
    /// A `PT_DYNAMIC` with no bytes in the file (`strip --only-keep-debug`
    /// output): like patchelf, no dynamic section, not a malformed one.
    pub(crate) empty_dynamic: bool,
    pub(crate) dynstr: Option<Strtab>,
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("codec", &self.codec)
            .field("file_len", &self.file_len)
            .field("phdrs", &self.phdrs.len())
            .field("shdrs", &self.shdrs.len())
            .field("dynamic", &self.dynamic.as_ref().map(|d| d.entries.len()))
            .finish_non_exhaustive()
    }
}

impl<'a> View<'a> {
    /// Parses the headers, `PT_INTERP`, the dynamic section and `.dynstr`.
    pub fn parse(src: &'a dyn ByteSource) -> Result<View<'a>> {
        let file_len = src.size();
        let head_len = file_len.min(64) as usize;
        let mut head = vec![0; head_len];
        src.read_exact_at(&mut head, 0)?;
        if !crate::is_elf(&head) {
            return Err(Malformed::NotElf.into());
        }
        let class = head.get(EI_CLASS).copied().unwrap_or(0);
        let data = head.get(EI_DATA).copied().unwrap_or(0);
        let is64 = match class {
            ELFCLASS64 => true,
            ELFCLASS32 => false,
            c => return Err(Malformed::BadClass(c).into()),
        };
        let big = match data {
            ELFDATA2LSB => false,
            ELFDATA2MSB => true,
            d => return Err(Malformed::BadEndian(d).into()),
        };
        let codec = Codec { is64, big };
        if (head_len as u64) < codec.ehdr_size() {
            return Err(Malformed::OutOfBounds {
                what: "ELF header",
                offset: 0,
                size: codec.ehdr_size(),
                file_len,
            }
            .into());
        }
        let header = Elf::parse_header(&head).map_err(|_| Malformed::OutOfBounds {
            what: "ELF header",
            offset: 0,
            size: codec.ehdr_size(),
            file_len,
        })?;
        let mut view = View {
            src,
            codec,
            file_len,
            header,
            phdrs: Vec::new(),
            shdrs: Vec::new(),
            interp: None,
            dynamic: None,
            empty_dynamic: false,
            dynstr: None,
        };
        view.parse_phdrs()?;
        view.parse_shdrs()?;
        view.parse_interp()?;
        view.parse_dynamic()?;
        Ok(view)
    }

    /// Reads `len` bytes at `offset`, which must lie inside the file.
    pub(crate) fn read(&self, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>> {
        self.check_range(offset, len, what)?;
        let mut buf = vec![0; len as usize];
        self.src.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Checks that `[offset, offset + len)` lies inside the file.
    pub(crate) fn check_range(
        &self,
        offset: u64,
        len: u64,
        what: &'static str,
    ) -> Result<(), Malformed> {
        match offset.checked_add(len) {
            Some(end) if end <= self.file_len && usize::try_from(len).is_ok() => Ok(()),
            _ => Err(Malformed::OutOfBounds {
                what,
                offset,
                size: len,
                file_len: self.file_len,
            }),
        }
    }

    /// Rejects a range overlapping the ELF header or the program or section
    /// header tables: writing it would clobber them.
    pub(crate) fn check_disjoint_from_headers(
        &self,
        offset: u64,
        len: u64,
        what: &'static str,
    ) -> Result<(), Malformed> {
        let h = &self.header;
        let tables = [
            (0, self.codec.ehdr_size()),
            (h.e_phoff, u64::from(h.e_phnum) * self.codec.phdr_size()),
            (h.e_shoff, self.shdrs.len() as u64 * self.codec.shdr_size()),
        ];
        let end = offset.saturating_add(len);
        for (s, l) in tables {
            if l > 0 && offset < s.saturating_add(l) && s < end {
                return Err(Malformed::OverlapsHeaders { what, offset });
            }
        }
        Ok(())
    }

    /// A bounds-checked reader over bytes read from `offset`.
    pub(crate) fn reader<'b>(&self, data: &'b [u8], offset: u64, what: &'static str) -> Reader<'b> {
        Reader {
            codec: self.codec,
            data,
            base: offset,
            what,
        }
    }

    /// The file offset of `size` bytes at virtual address `addr`, which must
    /// be backed by file bytes of one `PT_LOAD`.
    pub(crate) fn addr_to_offset(
        &self,
        addr: u64,
        size: u64,
        what: &'static str,
    ) -> Result<u64, Malformed> {
        self.phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .find_map(|p| {
                let rel = addr.checked_sub(p.p_vaddr)?;
                let end = rel.checked_add(size)?;
                (end <= p.p_filesz).then(|| p.p_offset + rel)
            })
            .ok_or(Malformed::Unmapped { what, addr, size })
    }

    fn parse_phdrs(&mut self) -> Result<()> {
        let h = &self.header;
        if h.e_phnum == 0 {
            return Ok(());
        }
        if u64::from(h.e_phentsize) != self.codec.phdr_size() {
            return Err(Malformed::BadField {
                field: "e_phentsize",
                value: h.e_phentsize.into(),
            }
            .into());
        }
        if h.e_phnum == 0xffff {
            // PN_XNUM: the count lives in section 0; no real file needs it.
            return Err(Malformed::BadField {
                field: "e_phnum",
                value: h.e_phnum.into(),
            }
            .into());
        }
        let size = u64::from(h.e_phnum) * self.codec.phdr_size();
        if h.e_phoff < self.codec.ehdr_size() {
            return Err(Malformed::BadField {
                field: "e_phoff (inside the ELF header)",
                value: h.e_phoff,
            }
            .into());
        }
        let bytes = self.read(h.e_phoff, size, "program header table")?;
        let phdrs =
            ProgramHeader::parse(&bytes, 0, h.e_phnum.into(), self.codec.ctx()).map_err(|_| {
                Malformed::OutOfBounds {
                    what: "program header table",
                    offset: h.e_phoff,
                    size,
                    file_len: self.file_len,
                }
            })?;
        for p in &phdrs {
            if p.p_type == PT_LOAD || p.p_type == PT_DYNAMIC || p.p_type == PT_INTERP {
                self.check_range(p.p_offset, p.p_filesz, segment_name(p.p_type))?;
            }
            // What glibc's loader requires of every PT_LOAD; an edit that
            // shifts segments by pages keeps it only for such alignments.
            if p.p_type == PT_LOAD && p.p_align > 1 {
                if !p.p_align.is_power_of_two() {
                    return Err(Malformed::BadField {
                        field: "p_align of a PT_LOAD (not a power of two)",
                        value: p.p_align,
                    }
                    .into());
                }
                if p.p_vaddr.wrapping_sub(p.p_offset) & (p.p_align - 1) != 0 {
                    return Err(Malformed::BadField {
                        field: "p_offset of a PT_LOAD (not congruent to p_vaddr modulo p_align)",
                        value: p.p_offset,
                    }
                    .into());
                }
            }
            if p.p_type == PT_LOAD && p.p_filesz > p.p_memsz {
                return Err(Malformed::BadField {
                    field: "p_filesz (larger than p_memsz)",
                    value: p.p_filesz,
                }
                .into());
            }
        }
        // Empty segments map nothing; between two others they must not
        // hide an overlap.
        let mut loads: Vec<usize> = (0..phdrs.len())
            .filter(|&i| phdrs[i].p_type == PT_LOAD && phdrs[i].p_memsz > 0)
            .collect();
        loads.sort_by_key(|&i| phdrs[i].p_vaddr);
        for w in loads.windows(2) {
            let (a, b) = (&phdrs[w[0]], &phdrs[w[1]]);
            let a_end = a.p_vaddr.checked_add(a.p_memsz);
            if a_end.is_none_or(|e| e > b.p_vaddr) {
                return Err(Malformed::OverlappingSegments {
                    first: w[0].min(w[1]),
                    second: w[0].max(w[1]),
                }
                .into());
            }
        }
        self.phdrs = phdrs;
        Ok(())
    }

    fn parse_shdrs(&mut self) -> Result<()> {
        let h = &self.header;
        if h.e_shoff == 0 {
            return Ok(());
        }
        if u64::from(h.e_shentsize) != self.codec.shdr_size() {
            return Err(Malformed::BadField {
                field: "e_shentsize",
                value: h.e_shentsize.into(),
            }
            .into());
        }
        let entsize = self.codec.shdr_size();
        if h.e_shoff < self.codec.ehdr_size() {
            return Err(Malformed::BadField {
                field: "e_shoff (inside the ELF header)",
                value: h.e_shoff,
            }
            .into());
        }
        let first = self.read(h.e_shoff, entsize, "section header table")?;
        let mut count = u64::from(h.e_shnum);
        if count == 0 {
            // More than SHN_LORESERVE sections: the count is in section 0.
            let s0 = SectionHeader::parse_from(&first, 0, 1, self.codec.ctx()).map_err(|_| {
                Malformed::OutOfBounds {
                    what: "section header table",
                    offset: h.e_shoff,
                    size: entsize,
                    file_len: self.file_len,
                }
            })?;
            count = s0.first().map_or(0, |s| s.sh_size);
        }
        if count == 0 {
            return Ok(());
        }
        let size = count.saturating_mul(entsize);
        let bytes = self.read(h.e_shoff, size, "section header table")?;
        let shdrs = SectionHeader::parse_from(&bytes, 0, count as usize, self.codec.ctx())
            .map_err(|_| Malformed::OutOfBounds {
                what: "section header table",
                offset: h.e_shoff,
                size,
                file_len: self.file_len,
            })?;
        for s in &shdrs {
            if s.sh_type != SHT_NOBITS && s.sh_type != 0 {
                self.check_range(s.sh_offset, s.sh_size, "section")?;
            }
        }
        let ph = self.header.e_phoff
            ..self.header.e_phoff + u64::from(self.header.e_phnum) * self.codec.phdr_size();
        let sh = self.header.e_shoff..self.header.e_shoff + size;
        if ph.start < sh.end && sh.start < ph.end {
            return Err(Malformed::BadField {
                field: "e_shoff (overlaps the program header table)",
                value: self.header.e_shoff,
            }
            .into());
        }
        self.shdrs = shdrs;
        if let Err(e) = self.check_section_names(&self.shdrs) {
            self.shdrs = Vec::new();
            return Err(e);
        }
        Ok(())
    }

    /// The sonames the FDO `.note.dlopen` notes of the `PT_NOTE` segments
    /// list, one list of alternatives per entry. Unreadable segments and
    /// descriptors that are not the specification's JSON count as none.
    pub(crate) fn dlopen_sonames(&self) -> Vec<Vec<String>> {
        use crate::notes;
        let mut out = Vec::new();
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
            if p.p_filesz > notes::MAX_NOTE_SEGMENT {
                continue;
            }
            let Ok(seg) = self.read(p.p_offset, p.p_filesz, "note segment") else {
                continue;
            };
            let codec = self.codec;
            for (name, ty, desc) in notes::each(&seg, |b, o| codec.u32(b, o)) {
                if ty == notes::NT_FDO_DLOPEN_METADATA && name == notes::FDO {
                    let json = desc.split(|&b| b == 0).next().unwrap_or_default();
                    out.extend(notes::parse(json).unwrap_or_default());
                }
            }
        }
        out
    }

    /// Index of the section-name string table (`None`: no names).
    pub(crate) fn shstrtab_index(&self) -> Option<usize> {
        const SHN_XINDEX: u16 = 0xffff;
        let i = match self.header.e_shstrndx {
            0 => return None,
            SHN_XINDEX => self.shdrs.first().map(|s| s.sh_link as usize)?,
            i => usize::from(i),
        };
        (i < self.shdrs.len()).then_some(i)
    }

    /// Every section called `name` (not `SHT_NULL`), in table order.
    pub(crate) fn sections_named(&self, name: &[u8]) -> Result<Vec<usize>> {
        let Some(t) = self.shstrtab_index() else {
            return Ok(Vec::new());
        };
        let t = &self.shdrs[t];
        let names = self.read(t.sh_offset, t.sh_size, "section name table")?;
        Ok((0..self.shdrs.len())
            .filter(|&i| {
                let s = &self.shdrs[i];
                names
                    .get(s.sh_name..)
                    .and_then(|r| r.split(|&b| b == 0).next())
                    .is_some_and(|n| n == name && s.sh_type != 0)
            })
            .collect())
    }

    /// The section-name string table must exist where `e_shstrndx` says,
    /// end with a NUL, and hold every `sh_name` (patchelf refuses files
    /// whose names it cannot read; so do we, before any edit).
    fn check_section_names(&self, shdrs: &[SectionHeader]) -> Result<()> {
        const SHN_XINDEX: u16 = 0xffff;
        let index = match self.header.e_shstrndx {
            0 => return Ok(()),
            SHN_XINDEX => shdrs.first().map_or(0, |s| u64::from(s.sh_link)),
            i => u64::from(i),
        };
        let table = usize::try_from(index)
            .ok()
            .and_then(|i| shdrs.get(i))
            .filter(|s| s.sh_type == goblin::elf::section_header::SHT_STRTAB)
            .ok_or(Malformed::BadField {
                field: "e_shstrndx (no such string table section)",
                value: index,
            })?;
        let size = table.sh_size;
        // Overlapping a header table, its names would change with any edit
        // of the headers.
        self.check_disjoint_from_headers(table.sh_offset, size, "section name table")?;
        if size > 0 {
            let last = self.read(table.sh_offset + size - 1, 1, "section name table")?;
            if last[0] != 0 {
                return Err(Malformed::UnterminatedString {
                    table: "section name table",
                    offset: size - 1,
                }
                .into());
            }
        }
        for s in shdrs.iter().skip(1) {
            if s.sh_name as u64 >= size.max(1) && !(s.sh_name == 0 && s.sh_type == 0) {
                return Err(Malformed::StringOutOfBounds {
                    what: "sh_name",
                    offset: s.sh_name as u64,
                    size,
                }
                .into());
            }
        }
        Ok(())
    }

    fn parse_interp(&mut self) -> Result<()> {
        let mut found = None;
        for (i, p) in self.phdrs.iter().enumerate() {
            if p.p_type != PT_INTERP {
                continue;
            }
            if found.is_some() {
                return Err(Malformed::Duplicate("PT_INTERP").into());
            }
            if p.p_filesz == 0 {
                // Its bytes were stripped (`strip --only-keep-debug`): an
                // empty interpreter, which an edit may replace.
                // `.interp` (NOBITS now) follows where the bytes go.
                let shdr = self.shdrs.iter().position(|s| {
                    s.sh_type == SHT_NOBITS && s.sh_addr == p.p_vaddr && s.sh_addr != 0
                });
                found = Some(Interp {
                    phdr: i,
                    shdr,
                    value: Vec::new(),
                });
                continue;
            }
            let bytes = self.read(p.p_offset, p.p_filesz, "PT_INTERP")?;
            let len = bytes
                .iter()
                .position(|&b| b == 0)
                .ok_or(Malformed::UnterminatedString {
                    table: "PT_INTERP",
                    offset: 0,
                })?;
            let shdr = self.shdrs.iter().position(|s| {
                s.sh_type != SHT_NOBITS && s.sh_offset == p.p_offset && s.sh_size == p.p_filesz
            });
            found = Some(Interp {
                phdr: i,
                shdr,
                value: bytes[..len].to_vec(),
            });
        }
        self.interp = found;
        Ok(())
    }

    fn parse_dynamic(&mut self) -> Result<()> {
        let mut index = None;
        for (i, p) in self.phdrs.iter().enumerate() {
            if p.p_type == PT_DYNAMIC {
                if index.is_some() {
                    return Err(Malformed::Duplicate("PT_DYNAMIC").into());
                }
                index = Some(i);
            }
        }
        let entsize = self.codec.dyn_size();
        let shdr = self.shdrs.iter().position(|s| s.sh_type == SHT_DYNAMIC);
        // Where the entries are: PT_DYNAMIC, or the section header alone.
        let (offset, vaddr, mut size) = match (index, shdr) {
            (Some(phdr), _) => {
                let p = &self.phdrs[phdr];
                if p.p_filesz == 0 {
                    self.empty_dynamic = true;
                    return Ok(());
                }
                (p.p_offset, p.p_vaddr, p.p_filesz)
            }
            (None, Some(s)) if self.shdrs[s].sh_size > 0 => {
                let s = &self.shdrs[s];
                (s.sh_offset, s.sh_addr, s.sh_size)
            }
            (None, _) => return Ok(()),
        };
        if let Some(s) = shdr {
            if self.shdrs[s].sh_offset != offset {
                return Err(Malformed::Inconsistent {
                    what: ".dynamic offset",
                    section: self.shdrs[s].sh_offset,
                    dynamic: offset,
                }
                .into());
            }
            size = size.min(self.shdrs[s].sh_size);
        }
        let phdr = index;
        let slots = size / entsize;
        self.check_disjoint_from_headers(offset, slots * entsize, "PT_DYNAMIC")?;
        let bytes = self.read(offset, slots * entsize, "dynamic section")?;
        let r = self.reader(&bytes, offset, "dynamic section");
        let mut entries = Vec::new();
        let mut terminated = false;
        for i in 0..slots {
            let tag = r.uword(i * entsize)?;
            if tag == DT_NULL {
                terminated = true;
                break;
            }
            entries.push((tag, r.uword(i * entsize + self.codec.word())?));
        }
        if !terminated {
            return Err(Malformed::UnterminatedDynamic { offset }.into());
        }
        let dynamic = Dynamic {
            phdr,
            shdr,
            offset,
            vaddr,
            slots,
            entries,
        };

        let dynstr = self.parse_dynstr(&dynamic)?;
        if let Some(t) = &dynstr {
            for &(tag, val) in &dynamic.entries {
                if STRING_TAGS.contains(&tag) && val >= t.bytes.len() as u64 {
                    return Err(Malformed::StringOutOfBounds {
                        what: tag_name(tag),
                        offset: val,
                        size: t.bytes.len() as u64,
                    }
                    .into());
                }
            }
        }
        self.dynamic = Some(dynamic);
        self.dynstr = dynstr;
        Ok(())
    }

    /// `.dynstr`, where `DT_STRTAB`/`DT_STRSZ` say, checked against its
    /// section header; `None` when the file has no string table and no
    /// entry needs one.
    fn parse_dynstr(&self, dynamic: &Dynamic) -> Result<Option<Strtab>> {
        let strtab = dynamic.get(DT_STRTAB);
        let strsz = dynamic.get(DT_STRSZ);
        let first_string = dynamic.entries.iter().find(|e| STRING_TAGS.contains(&e.0));
        Ok(match (strtab, strsz) {
            (Some(addr), Some(size)) => {
                let offset = self.addr_to_offset(addr, size, "DT_STRTAB")?;
                self.check_disjoint_from_headers(offset, size, "DT_STRTAB")?;
                let bytes = self.read(offset, size, "dynamic string table")?;
                if bytes.last().is_some_and(|&b| b != 0) {
                    return Err(Malformed::UnterminatedString {
                        table: ".dynstr",
                        offset: size - 1,
                    }
                    .into());
                }
                // `.dynamic`'s sh_link names `.dynstr`; both must agree with
                // what the loader uses.
                let shdr = dynamic
                    .shdr
                    .map(|d| self.shdrs[d].sh_link as usize)
                    .filter(|&l| self.shdrs.get(l).is_some_and(|s| s.sh_type == SHT_STRTAB))
                    .or_else(|| {
                        self.shdrs.iter().position(|s| {
                            s.sh_type == SHT_STRTAB
                                && s.sh_flags & u64::from(SHF_ALLOC) != 0
                                && s.sh_addr == addr
                        })
                    });
                if let Some(s) = shdr.map(|i| &self.shdrs[i]) {
                    for (what, section, dynamic) in [
                        (".dynstr address", s.sh_addr, addr),
                        (".dynstr offset", s.sh_offset, offset),
                    ] {
                        if section != dynamic {
                            return Err(Malformed::Inconsistent {
                                what,
                                section,
                                dynamic,
                            }
                            .into());
                        }
                    }
                }
                Some(Strtab {
                    shdr,
                    offset,
                    addr,
                    bytes,
                })
            }
            _ => {
                if let Some(e) = first_string {
                    return Err(Malformed::MissingStrtab(tag_name(e.0)).into());
                }
                None
            }
        })
    }

    /// The string a dynamic entry's value points at.
    pub(crate) fn dyn_string(&self, val: u64) -> Option<&[u8]> {
        self.dynstr.as_ref()?.get(val)
    }

    /// The strings of all entries with `tag`, in order.
    pub(crate) fn dyn_strings(&self, tag: u64) -> Vec<&[u8]> {
        let Some(d) = &self.dynamic else {
            return Vec::new();
        };
        d.entries
            .iter()
            .filter(|e| e.0 == tag)
            .filter_map(|e| self.dyn_string(e.1))
            .collect()
    }

    /// `e_machine`.
    pub fn machine(&self) -> u16 {
        self.header.e_machine
    }

    /// `e_type`.
    pub fn file_type(&self) -> u16 {
        self.header.e_type
    }

    /// `EI_OSABI`.
    pub fn osabi(&self) -> u8 {
        self.header.e_ident[EI_OSABI]
    }

    /// Whether the file is ELF64 (otherwise ELF32).
    pub fn is_64(&self) -> bool {
        self.codec.is64
    }

    /// Whether the file is big endian (otherwise little endian).
    pub fn is_big_endian(&self) -> bool {
        self.codec.big
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
}

/// A readable name for a dynamic tag, for error messages.
pub(crate) fn tag_name(tag: u64) -> &'static str {
    match tag {
        DT_NEEDED => "DT_NEEDED",
        DT_SONAME => "DT_SONAME",
        DT_RPATH => "DT_RPATH",
        DT_RUNPATH => "DT_RUNPATH",
        0x7fff_fffd => "DT_AUXILIARY",
        0x7fff_ffff => "DT_FILTER",
        0x6fff_fefa => "DT_CONFIG",
        0x6fff_fefb => "DT_DEPAUDIT",
        0x6fff_fefc => "DT_AUDIT",
        _ => "dynamic entry",
    }
}

fn segment_name(p_type: u32) -> &'static str {
    match p_type {
        PT_LOAD => "PT_LOAD segment",
        PT_DYNAMIC => "PT_DYNAMIC segment",
        PT_INTERP => "PT_INTERP segment",
        _ => "segment",
    }
}

/// Where a table described by the dynamic section lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    /// File offset.
    pub offset: u64,
    /// Virtual address.
    pub addr: u64,
    /// Size in bytes, when it could be worked out.
    pub size: Option<u64>,
}

/// A `vn_file` field of `.gnu.version_r`: the file name of a needed library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VnFile {
    /// File offset of the `vn_file` field itself.
    pub field: u64,
    /// Its value: an offset into the dynamic string table.
    pub name: u64,
}

/// The tables the dynamic section points at, with their extents, and the
/// string references the version tables hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    /// Number of dynamic symbols, when known.
    pub nsyms: Option<u64>,
    /// `DT_SYMTAB`.
    pub symtab: Option<Table>,
    /// `DT_HASH`.
    pub hash: Option<Table>,
    /// `DT_GNU_HASH`.
    pub gnu_hash: Option<Table>,
    /// `DT_VERSYM`.
    pub versym: Option<Table>,
    /// `DT_VERNEED`.
    pub verneed: Option<Table>,
    /// `DT_VERDEF`.
    pub verdef: Option<Table>,
    /// The `vn_file` fields of `.gnu.version_r`.
    pub vn_files: Vec<VnFile>,
    /// Other string offsets held by the version tables (`vna_name`, `vda_name`).
    pub version_names: Vec<u64>,
}

/// Upper bound on records walked in a version table (loops in malformed files).
const MAX_VERSION_RECORDS: u64 = 1 << 16;

impl View<'_> {
    /// Finds the hash, symbol and version tables and their sizes. Reads only
    /// their headers and chains, plus the version records.
    pub(crate) fn tables(&self) -> Result<Tables> {
        let Some(d) = &self.dynamic else {
            return Ok(Tables::default());
        };
        use goblin::elf::dynamic::{
            DT_GNU_HASH, DT_HASH, DT_SYMENT, DT_SYMTAB, DT_VERDEF, DT_VERDEFNUM, DT_VERNEED,
            DT_VERNEEDNUM, DT_VERSYM,
        };
        use goblin::elf::section_header::SHT_DYNSYM;
        let locate = |tag: u64, what: &'static str| -> Result<Option<Table>> {
            match d.get(tag) {
                None => Ok(None),
                Some(addr) => Ok(Some(Table {
                    offset: self.addr_to_offset(addr, 1, what)?,
                    addr,
                    size: None,
                })),
            }
        };
        let mut t = Tables {
            symtab: locate(DT_SYMTAB, "DT_SYMTAB")?,
            hash: locate(DT_HASH, "DT_HASH")?,
            gnu_hash: locate(DT_GNU_HASH, "DT_GNU_HASH")?,
            versym: locate(DT_VERSYM, "DT_VERSYM")?,
            verneed: locate(DT_VERNEED, "DT_VERNEED")?,
            verdef: locate(DT_VERDEF, "DT_VERDEF")?,
            ..Tables::default()
        };

        // Symbol count: the section header is exact; DT_HASH's nchain is
        // exact; DT_GNU_HASH needs a walk of the last chain.
        let mut hash_nsyms = None;
        if let Some(h) = &mut t.hash {
            let ent = self.hash_entry_size();
            let head = self.read(h.offset, 2 * ent, "DT_HASH")?;
            let r = self.reader(&head, h.offset, "DT_HASH");
            let (nbucket, nchain) = if ent == 8 {
                (r.uword(0)?, r.uword(8)?)
            } else {
                (u64::from(r.u32(0)?), u64::from(r.u32(4)?))
            };
            let size = nbucket
                .checked_add(nchain)
                .and_then(|n| n.checked_add(2))
                .and_then(|n| n.checked_mul(ent))
                .unwrap_or(u64::MAX);
            self.check_range(h.offset, size, "DT_HASH")?;
            h.size = Some(size);
            hash_nsyms = Some(nchain);
        }
        let mut gnu_nsyms = None;
        if let Some(g) = &mut t.gnu_hash {
            if let Some((size, nsyms)) = self.gnu_hash_extent(g.offset)? {
                g.size = Some(size);
                gnu_nsyms = Some(nsyms);
            }
        }
        let syment = d.get(DT_SYMENT).unwrap_or(self.codec.sym_size());
        if let Some(s) = &mut t.symtab {
            let from_shdr = self
                .shdrs
                .iter()
                .find(|h| h.sh_type == SHT_DYNSYM && h.sh_addr == s.addr && syment > 0)
                .map(|h| h.sh_size / syment);
            // The hash tables index the symbols for the loader: when a
            // (damaged) file's sources disagree, the table is as long as
            // the longest says, so that moving it keeps every symbol the
            // loader could look up.
            t.nsyms = [from_shdr, hash_nsyms, gnu_nsyms]
                .into_iter()
                .flatten()
                .max();
            if let Some(n) = t.nsyms {
                let size = n.saturating_mul(syment);
                self.check_range(s.offset, size, "dynamic symbol table")?;
                s.size = Some(size);
            }
        }
        if let (Some(v), Some(n)) = (&mut t.versym, t.nsyms) {
            v.size = Some(n * 2);
        }
        if let Some(v) = &mut t.verneed {
            let count = d.get(DT_VERNEEDNUM).unwrap_or(MAX_VERSION_RECORDS);
            let (size, files, names) = self.walk_verneed(v.offset, count)?;
            v.size = Some(size);
            t.vn_files = files;
            t.version_names.extend(names);
        }
        if let Some(v) = &mut t.verdef {
            let count = d.get(DT_VERDEFNUM).unwrap_or(MAX_VERSION_RECORDS);
            let (size, names) = self.walk_verdef(v.offset, count)?;
            v.size = Some(size);
            t.version_names.extend(names);
        }
        self.check_tables_disjoint(&t, d)?;
        // Version records name files and versions in .dynstr.
        if let Some(strtab) = &self.dynstr {
            let size = strtab.bytes.len() as u64;
            let files = t
                .vn_files
                .iter()
                .map(|f| ("vn_file (.gnu.version_r)", f.name));
            let names = t.version_names.iter().map(|&n| ("version name", n));
            if let Some((what, offset)) = files.chain(names).find(|(_, o)| *o >= size) {
                return Err(Malformed::StringOutOfBounds { what, offset, size }.into());
            }
        }
        Ok(t)
    }

    /// The dynamic section, its string table, the interpreter and the
    /// symbol, hash and version tables are disjoint from each other and
    /// from the ELF, program and section headers in the file: an edit moves and clears
    /// some of them, which must not change the others.
    fn check_tables_disjoint(&self, t: &Tables, d: &Dynamic) -> Result<()> {
        let entsize = self.codec.dyn_size();
        let mut ranges: Vec<(&'static str, u64, u64)> = vec![(
            "the dynamic section",
            d.offset,
            d.entries.len() as u64 * entsize + entsize,
        )];
        if let Some(s) = &self.dynstr {
            ranges.push(("DT_STRTAB", s.offset, s.bytes.len() as u64));
        }
        if let Some(i) = &self.interp {
            let p = &self.phdrs[i.phdr];
            ranges.push(("PT_INTERP", p.p_offset, p.p_filesz));
        }
        // Section names sharing bytes with `.dynstr` would change with it.
        let names = self.shdrs.get(usize::from(self.header.e_shstrndx));
        if let Some(s) = names.filter(|_| self.header.e_shstrndx != 0) {
            ranges.push(("the section name table", s.sh_offset, s.sh_size));
        }
        for (what, table) in [
            ("DT_SYMTAB", &t.symtab),
            ("DT_HASH", &t.hash),
            ("DT_GNU_HASH", &t.gnu_hash),
            ("DT_VERSYM", &t.versym),
            ("DT_VERNEED", &t.verneed),
            ("DT_VERDEF", &t.verdef),
        ] {
            // A table whose extent is unknown still starts where it says.
            if let Some(Table { offset, size, .. }) = table {
                ranges.push((what, *offset, size.unwrap_or(1)));
            }
        }
        ranges.retain(|r| r.2 > 0);
        for &(what, offset, size) in &ranges {
            self.check_disjoint_from_headers(offset, size, what)?;
        }
        ranges.sort_by_key(|r| r.1);
        for w in ranges.windows(2) {
            if w[0].1.saturating_add(w[0].2) > w[1].1 {
                return Err(Malformed::OverlappingTables {
                    first: w[0].0,
                    second: w[1].0,
                    offset: w[1].1,
                }
                .into());
            }
        }
        Ok(())
    }

    /// `DT_HASH` entries are 8 bytes on 64-bit s390 and Alpha, 4 elsewhere.
    pub(crate) fn hash_entry_size(&self) -> u64 {
        const EM_S390: u16 = 22;
        const EM_ALPHA: u16 = 0x9026;
        if self.codec.is64 && matches!(self.header.e_machine, EM_S390 | EM_ALPHA) {
            8
        } else {
            4
        }
    }

    /// (size in bytes, number of symbols) of a GNU hash table; buckets that
    /// do not fit the format are malformed.
    fn gnu_hash_extent(&self, offset: u64) -> Result<Option<(u64, u64)>> {
        let head = self.read(offset, 16, "DT_GNU_HASH")?;
        let r = self.reader(&head, offset, "DT_GNU_HASH");
        let nbuckets = u64::from(r.u32(0)?);
        if nbuckets == 0 {
            // The loader divides by it.
            return Err(Malformed::BadField {
                field: "DT_GNU_HASH bucket count",
                value: 0,
            }
            .into());
        }
        let symoffset = u64::from(r.u32(4)?);
        let bloom = u64::from(r.u32(8)?) * self.codec.word();
        let buckets_off = offset + 16 + bloom;
        let buckets = self.read(buckets_off, nbuckets * 4, "DT_GNU_HASH buckets")?;
        let br = self.reader(&buckets, buckets_off, "DT_GNU_HASH buckets");
        let mut max = 0;
        for i in 0..nbuckets {
            max = max.max(u64::from(br.u32(i * 4)?));
        }
        let chains_off = buckets_off + nbuckets * 4;
        if max == 0 {
            return Ok(Some((chains_off - offset, symoffset)));
        }
        // A bucket names the first symbol of its chain: at or past
        // `symoffset`, or 0 for none. Anything else is not a GNU hash table
        // whose extent (or whose symbols) the loader could agree with.
        if max < symoffset {
            return Err(Malformed::BadField {
                field: "DT_GNU_HASH bucket (below symoffset)",
                value: max,
            }
            .into());
        }
        let mut idx = max;
        loop {
            if idx - max > 1 << 20 {
                return Err(Malformed::BadField {
                    field: "DT_GNU_HASH chain (no end within 2^20 entries)",
                    value: max,
                }
                .into());
            }
            let at = chains_off + (idx - symoffset) * 4;
            let word = self.read(at, 4, "DT_GNU_HASH chain")?;
            let v = self.reader(&word, at, "DT_GNU_HASH chain").u32(0)?;
            if v & 1 != 0 {
                break;
            }
            idx += 1;
        }
        let nsyms = idx + 1;
        Ok(Some((chains_off + (nsyms - symoffset) * 4 - offset, nsyms)))
    }

    fn record(&self, at: u64, len: u64, what: &'static str) -> Result<Vec<u8>> {
        self.read(at, len, what)
    }

    #[allow(clippy::type_complexity)]
    fn walk_verneed(&self, start: u64, count: u64) -> Result<(u64, Vec<VnFile>, Vec<u64>)> {
        const WHAT: &str = ".gnu.version_r";
        let mut files = Vec::new();
        let mut names = Vec::new();
        let mut end = start;
        let mut at = start;
        for _ in 0..count.min(MAX_VERSION_RECORDS) {
            let rec = self.record(at, 16, WHAT)?;
            let r = self.reader(&rec, at, WHAT);
            let cnt = r.u16(2)?;
            files.push(VnFile {
                field: at + 4,
                name: u64::from(r.u32(4)?),
            });
            let aux = u64::from(r.u32(8)?);
            let next = u64::from(r.u32(12)?);
            end = end.max(at + 16);
            let mut a = at.checked_add(aux).ok_or(Malformed::BadVersionTable {
                what: WHAT,
                problem: "vn_aux overflows",
            })?;
            for _ in 0..cnt {
                let rec = self.record(a, 16, WHAT)?;
                let r = self.reader(&rec, a, WHAT);
                names.push(u64::from(r.u32(8)?));
                end = end.max(a + 16);
                let n = u64::from(r.u32(12)?);
                if n == 0 {
                    break;
                }
                a = a.checked_add(n).ok_or(Malformed::BadVersionTable {
                    what: WHAT,
                    problem: "vna_next overflows",
                })?;
            }
            if next == 0 {
                break;
            }
            at = at.checked_add(next).ok_or(Malformed::BadVersionTable {
                what: WHAT,
                problem: "vn_next overflows",
            })?;
        }
        Ok((end - start, files, names))
    }

    fn walk_verdef(&self, start: u64, count: u64) -> Result<(u64, Vec<u64>)> {
        const WHAT: &str = ".gnu.version_d";
        let mut names = Vec::new();
        let mut end = start;
        let mut at = start;
        for _ in 0..count.min(MAX_VERSION_RECORDS) {
            let rec = self.record(at, 20, WHAT)?;
            let r = self.reader(&rec, at, WHAT);
            let cnt = r.u16(6)?;
            let aux = u64::from(r.u32(12)?);
            let next = u64::from(r.u32(16)?);
            end = end.max(at + 20);
            let mut a = at.checked_add(aux).ok_or(Malformed::BadVersionTable {
                what: WHAT,
                problem: "vd_aux overflows",
            })?;
            for _ in 0..cnt {
                let rec = self.record(a, 8, WHAT)?;
                let r = self.reader(&rec, a, WHAT);
                names.push(u64::from(r.u32(0)?));
                end = end.max(a + 8);
                let n = u64::from(r.u32(4)?);
                if n == 0 {
                    break;
                }
                a = a.checked_add(n).ok_or(Malformed::BadVersionTable {
                    what: WHAT,
                    problem: "vda_next overflows",
                })?;
            }
            if next == 0 {
                break;
            }
            at = at.checked_add(next).ok_or(Malformed::BadVersionTable {
                what: WHAT,
                problem: "vd_next overflows",
            })?;
        }
        Ok((end - start, names))
    }

    /// Reads the `st_name` of every dynamic symbol.
    pub(crate) fn symbol_names(&self, tables: &Tables) -> Result<Option<Vec<u64>>> {
        let (Some(s), Some(n)) = (&tables.symtab, tables.nsyms) else {
            return Ok(None);
        };
        let Some(size) = s.size else { return Ok(None) };
        let syment = size.checked_div(n).unwrap_or(0);
        if n > 0 && syment < 4 {
            return Ok(None);
        }
        let bytes = self.read(s.offset, size, "dynamic symbol table")?;
        let r = self.reader(&bytes, s.offset, "dynamic symbol table");
        let mut names = Vec::with_capacity(n as usize);
        for i in 0..n {
            names.push(u64::from(r.u32(i * syment)?));
        }
        Ok(Some(names))
    }
}

impl View<'_> {
    /// The largest `st_size` of the dynamic symbols (0 when the table's
    /// extent is unknown), read in chunks.
    pub(crate) fn largest_symbol_size(&self, tables: &Tables) -> Result<u64> {
        const CHUNK: u64 = 4096;
        let (Some(s), Some(n)) = (&tables.symtab, tables.nsyms) else {
            return Ok(0);
        };
        let Some(size) = s.size else { return Ok(0) };
        let syment = size.checked_div(n).unwrap_or(0);
        let size_at = if self.codec.is64 { 16 } else { 8 };
        if syment < size_at + self.codec.word() {
            return Ok(0);
        }
        let mut largest = 0;
        let mut first = 0;
        while first < n {
            let count = CHUNK.min(n - first);
            let at = s.offset + first * syment;
            let bytes = self.read(at, count * syment, "dynamic symbol table")?;
            let r = self.reader(&bytes, at, "dynamic symbol table");
            for i in 0..count {
                largest = largest.max(r.uword(i * syment + size_at)?);
            }
            first += count;
        }
        Ok(largest)
    }
}

/// A symbol defined in a section that moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MovedSymbol {
    /// File offset of its `st_value` field.
    pub field: u64,
    /// Its value.
    pub value: u64,
    /// The section it is defined in.
    pub shndx: usize,
    /// Whether it is `_DYNAMIC`.
    pub is_dynamic: bool,
}

impl View<'_> {
    /// The symbols of every symbol table (`.symtab`, `.dynsym`) defined in
    /// one of `sections`, read in chunks. Names are read only for symbols in
    /// `dynamic_section`, to recognise `_DYNAMIC`.
    pub(crate) fn symbols_in(
        &self,
        sections: &std::collections::HashSet<usize>,
        dynamic_section: Option<usize>,
    ) -> Result<Vec<MovedSymbol>> {
        use goblin::elf::section_header::{SHT_DYNSYM, SHT_SYMTAB};
        const CHUNK: u64 = 4096;
        const NAME: &[u8] = b"_DYNAMIC\0";
        let entsize = self.codec.sym_size();
        let (value_at, shndx_at) = if self.codec.is64 { (8, 6) } else { (4, 14) };
        let mut out = Vec::new();
        for s in &self.shdrs {
            if s.sh_type != SHT_SYMTAB && s.sh_type != SHT_DYNSYM {
                continue;
            }
            let strtab = self.shdrs.get(s.sh_link as usize);
            let count = s.sh_size / entsize;
            let mut first = 0;
            while first < count {
                let n = CHUNK.min(count - first);
                let at = s.sh_offset + first * entsize;
                let bytes = self.read(at, n * entsize, "symbol table")?;
                let r = self.reader(&bytes, at, "symbol table");
                for i in 0..n {
                    let shndx = usize::from(r.u16(i * entsize + shndx_at)?);
                    if !sections.contains(&shndx) {
                        continue;
                    }
                    let value = r.uword(i * entsize + value_at)?;
                    let mut is_dynamic = false;
                    if Some(shndx) == dynamic_section {
                        let st_name = u64::from(r.u32(i * entsize)?);
                        is_dynamic = strtab
                            .filter(|t| st_name.saturating_add(NAME.len() as u64) <= t.sh_size)
                            .and_then(|t| t.sh_offset.checked_add(st_name))
                            .and_then(|o| self.read(o, NAME.len() as u64, "symbol name").ok())
                            .is_some_and(|b| b == NAME);
                    }
                    out.push(MovedSymbol {
                        field: at + i * entsize + value_at,
                        value,
                        shndx,
                        is_dynamic,
                    });
                }
                first += n;
            }
        }
        Ok(out)
    }
}
