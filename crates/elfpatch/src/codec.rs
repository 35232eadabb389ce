//! Class- and endian-aware reading and writing of ELF fields.
//!
//! One [`Codec`] value (class × byte order) drives every read and write, so
//! ELF32/ELF64 and little/big endian share one code path instead of four
//! copies. Reads go through [`Reader`], which bounds-checks every access and
//! reports the file offset of the problem; writes go into buffers whose size
//! the planner computed itself.

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::{ProgramHeader, SectionHeader};

use crate::error::Malformed;

/// The class and byte order of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Codec {
    /// ELF64 (otherwise ELF32).
    pub is64: bool,
    /// Big endian (otherwise little endian).
    pub big: bool,
}

impl Codec {
    /// goblin's name for the same thing.
    pub fn ctx(self) -> Ctx {
        Ctx::new(
            if self.is64 {
                Container::Big
            } else {
                Container::Little
            },
            if self.big {
                Endian::Big
            } else {
                Endian::Little
            },
        )
    }

    /// Size of an address / `Elf_Word`-sized dynamic value.
    pub fn word(self) -> u64 {
        if self.is64 {
            8
        } else {
            4
        }
    }

    /// Size of one program header.
    pub fn phdr_size(self) -> u64 {
        if self.is64 {
            56
        } else {
            32
        }
    }

    /// Size of one section header.
    pub fn shdr_size(self) -> u64 {
        if self.is64 {
            64
        } else {
            40
        }
    }

    /// Size of one dynamic entry.
    pub fn dyn_size(self) -> u64 {
        2 * self.word()
    }

    /// Size of one symbol.
    pub fn sym_size(self) -> u64 {
        if self.is64 {
            24
        } else {
            16
        }
    }

    /// Size of the ELF header.
    pub fn ehdr_size(self) -> u64 {
        if self.is64 {
            64
        } else {
            52
        }
    }

    /// Offset of `e_phnum` in the ELF header.
    pub fn e_phnum_offset(self) -> u64 {
        if self.is64 {
            56
        } else {
            44
        }
    }

    /// Offset of `e_shnum` in the ELF header.
    pub fn e_shnum_offset(self) -> u64 {
        self.e_phnum_offset() + 4
    }

    /// Offset of `e_shstrndx` in the ELF header.
    pub fn e_shstrndx_offset(self) -> u64 {
        self.e_phnum_offset() + 6
    }

    /// Writes `e_phoff` and `e_shoff` into the ELF header `b`.
    pub fn put_ehdr_offsets(self, b: &mut [u8], e_phoff: u64, e_shoff: u64) {
        let (phoff, shoff) = if self.is64 { (32, 40) } else { (28, 32) };
        self.put_uword(b, phoff, e_phoff);
        self.put_uword(b, shoff, e_shoff);
    }

    /// The largest offset or address the class can express.
    pub fn max_addr(self) -> u64 {
        if self.is64 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    fn get<const N: usize>(self, b: &[u8], off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        b.get(off..end)?.try_into().ok()
    }

    /// A `u16` at `off` of `b`, if in bounds.
    pub fn u16(self, b: &[u8], off: usize) -> Option<u16> {
        let a = self.get::<2>(b, off)?;
        Some(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    /// A `u32` at `off` of `b`, if in bounds.
    pub fn u32(self, b: &[u8], off: usize) -> Option<u32> {
        let a = self.get::<4>(b, off)?;
        Some(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    /// A `u64` at `off` of `b`, if in bounds.
    pub fn u64(self, b: &[u8], off: usize) -> Option<u64> {
        let a = self.get::<8>(b, off)?;
        Some(if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }

    /// A class-sized word (`u32` or `u64`) at `off` of `b`, if in bounds.
    pub fn uword(self, b: &[u8], off: usize) -> Option<u64> {
        if self.is64 {
            self.u64(b, off)
        } else {
            self.u32(b, off).map(u64::from)
        }
    }

    /// A `u32` or `u64` (by `width`) at `off` of `b`, if in bounds.
    pub fn uword_sized(self, b: &[u8], off: usize, width: usize) -> Option<u64> {
        if width == 8 {
            self.u64(b, off)
        } else {
            self.u32(b, off).map(u64::from)
        }
    }

    /// Writes a `u32` or `u64` (by `width`).
    pub fn put_sized(self, b: &mut [u8], off: usize, v: u64, width: usize) {
        if width == 8 {
            let a = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            b[off..off + 8].copy_from_slice(&a);
        } else {
            self.put_u32(b, off, v as u32);
        }
    }

    /// Writes a `u16`. `b` must be large enough (the planner sizes it).
    pub fn put_u16(self, b: &mut [u8], off: usize, v: u16) {
        let a = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        b[off..off + 2].copy_from_slice(&a);
    }

    /// Writes a `u32`.
    pub fn put_u32(self, b: &mut [u8], off: usize, v: u32) {
        let a = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        b[off..off + 4].copy_from_slice(&a);
    }

    /// Writes a `u64`.
    pub fn put_u64(self, b: &mut [u8], off: usize, v: u64) {
        let a = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        b[off..off + 8].copy_from_slice(&a);
    }

    /// Writes a class-sized word; values were range-checked by the planner,
    /// so truncation to 32 bits only drops zero bits.
    pub fn put_uword(self, b: &mut [u8], off: usize, v: u64) {
        if self.is64 {
            self.put_u64(b, off, v)
        } else {
            self.put_u32(b, off, v as u32)
        }
    }

    /// Serialises one program header.
    pub fn phdr_bytes(self, p: &ProgramHeader) -> Vec<u8> {
        let mut b = vec![0; self.phdr_size() as usize];
        self.put_u32(&mut b, 0, p.p_type);
        if self.is64 {
            self.put_u32(&mut b, 4, p.p_flags);
            self.put_u64(&mut b, 8, p.p_offset);
            self.put_u64(&mut b, 16, p.p_vaddr);
            self.put_u64(&mut b, 24, p.p_paddr);
            self.put_u64(&mut b, 32, p.p_filesz);
            self.put_u64(&mut b, 40, p.p_memsz);
            self.put_u64(&mut b, 48, p.p_align);
        } else {
            self.put_u32(&mut b, 4, p.p_offset as u32);
            self.put_u32(&mut b, 8, p.p_vaddr as u32);
            self.put_u32(&mut b, 12, p.p_paddr as u32);
            self.put_u32(&mut b, 16, p.p_filesz as u32);
            self.put_u32(&mut b, 20, p.p_memsz as u32);
            self.put_u32(&mut b, 24, p.p_flags);
            self.put_u32(&mut b, 28, p.p_align as u32);
        }
        b
    }

    /// Serialises one section header.
    pub fn shdr_bytes(self, s: &SectionHeader) -> Vec<u8> {
        let mut b = vec![0; self.shdr_size() as usize];
        self.put_u32(&mut b, 0, s.sh_name as u32);
        self.put_u32(&mut b, 4, s.sh_type);
        if self.is64 {
            self.put_u64(&mut b, 8, s.sh_flags);
            self.put_u64(&mut b, 16, s.sh_addr);
            self.put_u64(&mut b, 24, s.sh_offset);
            self.put_u64(&mut b, 32, s.sh_size);
            self.put_u32(&mut b, 40, s.sh_link);
            self.put_u32(&mut b, 44, s.sh_info);
            self.put_u64(&mut b, 48, s.sh_addralign);
            self.put_u64(&mut b, 56, s.sh_entsize);
        } else {
            self.put_u32(&mut b, 8, s.sh_flags as u32);
            self.put_u32(&mut b, 12, s.sh_addr as u32);
            self.put_u32(&mut b, 16, s.sh_offset as u32);
            self.put_u32(&mut b, 20, s.sh_size as u32);
            self.put_u32(&mut b, 24, s.sh_link);
            self.put_u32(&mut b, 28, s.sh_info);
            self.put_u32(&mut b, 32, s.sh_addralign as u32);
            self.put_u32(&mut b, 36, s.sh_entsize as u32);
        }
        b
    }

    /// Serialises dynamic entries, padded with `DT_NULL` to `slots` entries.
    pub fn dyn_bytes(self, entries: &[(u64, u64)], slots: usize) -> Vec<u8> {
        let w = self.word() as usize;
        let mut b = vec![0; slots.max(entries.len()) * 2 * w];
        for (i, &(tag, val)) in entries.iter().enumerate() {
            self.put_uword(&mut b, 2 * w * i, tag);
            self.put_uword(&mut b, 2 * w * i + w, val);
        }
        b
    }
}

/// A bounds-checked window on bytes read from the file at `base`.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub codec: Codec,
    pub data: &'a [u8],
    /// File offset of `data[0]`, for error messages.
    pub base: u64,
    /// What these bytes are, for error messages.
    pub what: &'static str,
}

impl Reader<'_> {
    fn oob(&self, off: u64, size: u64) -> Malformed {
        Malformed::OutOfBounds {
            what: self.what,
            offset: self.base.saturating_add(off),
            size,
            file_len: self.base.saturating_add(self.data.len() as u64),
        }
    }

    fn idx(&self, off: u64) -> usize {
        usize::try_from(off).unwrap_or(usize::MAX)
    }

    /// A `u16` at `off`.
    pub fn u16(&self, off: u64) -> Result<u16, Malformed> {
        self.codec
            .u16(self.data, self.idx(off))
            .ok_or_else(|| self.oob(off, 2))
    }

    /// A `u32` at `off`.
    pub fn u32(&self, off: u64) -> Result<u32, Malformed> {
        self.codec
            .u32(self.data, self.idx(off))
            .ok_or_else(|| self.oob(off, 4))
    }

    /// A class-sized word at `off`.
    pub fn uword(&self, off: u64) -> Result<u64, Malformed> {
        self.codec
            .uword(self.data, self.idx(off))
            .ok_or_else(|| self.oob(off, self.codec.word()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phdr_round_trips_through_goblin_in_every_flavour() {
        let p = ProgramHeader {
            p_type: 1,
            p_flags: 6,
            p_offset: 0x1234,
            p_vaddr: 0x5234,
            p_paddr: 0x5234,
            p_filesz: 0x10,
            p_memsz: 0x20,
            p_align: 0x1000,
        };
        for is64 in [false, true] {
            for big in [false, true] {
                let c = Codec { is64, big };
                let b = c.phdr_bytes(&p);
                let back = ProgramHeader::parse(&b, 0, 1, c.ctx()).unwrap();
                assert_eq!(back[0], p, "is64={is64} big={big}");
            }
        }
    }

    #[test]
    fn shdr_round_trips_through_goblin_in_every_flavour() {
        let s = SectionHeader {
            sh_name: 7,
            sh_type: 3,
            sh_flags: 2,
            sh_addr: 0x400,
            sh_offset: 0x400,
            sh_size: 0x99,
            sh_link: 0,
            sh_info: 0,
            sh_addralign: 1,
            sh_entsize: 0,
        };
        for is64 in [false, true] {
            for big in [false, true] {
                let c = Codec { is64, big };
                let b = c.shdr_bytes(&s);
                let back = SectionHeader::parse_from(&b, 0, 1, c.ctx()).unwrap();
                assert_eq!(back[0], s, "is64={is64} big={big}");
            }
        }
    }

    #[test]
    fn reader_reports_out_of_bounds_with_file_offset() {
        let c = Codec {
            is64: true,
            big: false,
        };
        let r = Reader {
            codec: c,
            data: &[0; 6],
            base: 0x100,
            what: "test",
        };
        assert_eq!(r.u32(2).unwrap(), 0);
        let e = r.u32(4).unwrap_err();
        assert!(matches!(e, Malformed::OutOfBounds { offset: 0x104, .. }));
    }
}
