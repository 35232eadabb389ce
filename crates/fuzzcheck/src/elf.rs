//! `elf_edit`: view, planner and applier on arbitrary bytes.
//!
//! Input: four control bytes choosing the edits, then the ELF image (the
//! seeds are real files built by `cc`, with four control bytes in front).
//! Reading may refuse; planning may refuse; neither may panic. When an edit
//! succeeds, the output must
//!
//! - parse again and read back every requested value;
//! - keep `DT_NEEDED` as asked (added, removed, replaced, otherwise equal);
//! - keep its `PT_LOAD`s sorted, congruent and inside the file (when the
//!   input's were);
//! - keep the bytes of every executable section unchanged;
//! - be left byte-identical by the same edits applied again (when they are
//!   the kind that can be: set, not add).

use elfpatch::{patch_bytes, read_bytes, Edits, Info, RunpathEdit};
use goblin::elf::program_header::{PF_X, PT_LOAD};
use goblin::elf::section_header::{SHF_EXECINSTR, SHT_PROGBITS};

/// What the four control bytes ask for.
fn edits(control: [u8; 4], info: &Info) -> Edits {
    let [ops, len, misc, interp_len] = control;
    let text = |n: usize, seed: char| -> String {
        (0..n)
            .map(|i| if i % 7 == 0 { '/' } else { seed })
            .collect()
    };
    let dirs = format!("/d{}", text(len as usize * 2, 'r'));
    let runpath = match ops & 3 {
        0 => RunpathEdit::Keep,
        1 => RunpathEdit::Set(dirs),
        2 => RunpathEdit::Add(dirs),
        _ => RunpathEdit::Remove,
    };
    // Names are asked for as text: a name that is not UTF-8 cannot be.
    let first_needed = info
        .needed
        .first()
        .filter(|n| !n.contains(char::REPLACEMENT_CHARACTER))
        .cloned();
    Edits {
        runpath,
        interpreter: (ops & 4 != 0).then(|| format!("/i{}", text(interp_len as usize, 'l'))),
        soname: (ops & 8 != 0).then(|| format!("libs{}.so", text(len as usize % 40, 'o'))),
        add_needed: if ops & 16 != 0 {
            vec![format!("libadded{}.so.1", len % 4)]
        } else {
            vec![]
        },
        remove_needed: match (ops & 32 != 0, &first_needed) {
            (true, Some(n)) => vec![n.clone()],
            _ => vec![],
        },
        force_rpath: ops & 64 != 0,
        replace_needed: match (ops & 128 != 0, &first_needed) {
            (true, Some(n)) if ops & 32 == 0 => {
                vec![(
                    n.clone(),
                    format!("libreplaced{}.so", text(len as usize % 30, 'p')),
                )]
            }
            _ => vec![],
        },
        execstack: match misc & 3 {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        },
        no_default_lib: misc & 4 != 0,
        add_debug_tag: misc & 8 != 0,
        os_abi: (misc & 16 != 0).then_some(3),
        page_size: (misc & 32 != 0).then_some(0x10000),
        ..Default::default()
    }
}

/// The property; panics with what broke.
pub fn check(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let control = [data[0], data[1], data[2], data[3]];
    let image = &data[4..];
    let Ok(info) = read_bytes(image) else { return };
    let edits = edits(control, &info);
    let Ok(out) = patch_bytes(image, &edits) else {
        return;
    };
    let after = match read_bytes(&out) {
        Ok(a) => a,
        Err(e) => panic!("the edited image does not read back: {e:?}\nedits: {edits:?}"),
    };
    reads_back(&info, &after, &edits);
    if loads_sound(image).is_ok() {
        if let Err(why) = loads_sound(&out) {
            panic!("{why}\nedits: {edits:?}");
        }
    }
    code_unchanged(image, &out);
    idempotent(&out, &edits);
}

/// Every value asked for reads back from the edited image.
fn reads_back(before: &Info, after: &Info, edits: &Edits) {
    // The loader takes DT_RUNPATH when there is one, else DT_RPATH.
    let active = after.runpath.as_deref().or(after.rpath.as_deref());
    match &edits.runpath {
        RunpathEdit::Set(s) => assert_eq!(active, Some(s.as_str()), "{edits:?}"),
        RunpathEdit::Add(s) => assert!(
            active.is_some_and(|a| a.split(':').any(|d| d == s)),
            "{s} not in {active:?}"
        ),
        RunpathEdit::Remove => assert_eq!(active, None, "{edits:?}"),
        _ => {}
    }
    if let Some(i) = &edits.interpreter {
        assert_eq!(after.interpreter.as_ref(), Some(i), "interpreter");
    }
    if let Some(s) = &edits.soname {
        assert_eq!(after.soname.as_ref(), Some(s), "soname");
    }
    let mut expected = before.needed.clone();
    expected.retain(|n| !edits.remove_needed.contains(n));
    for (old, new) in &edits.replace_needed {
        for n in expected.iter_mut().filter(|n| *n == old) {
            n.clone_from(new);
        }
    }
    for a in &edits.add_needed {
        if !expected.contains(a) {
            expected.insert(0, a.clone());
        }
    }
    let mut got = after.needed.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "DT_NEEDED after {edits:?}");
    if let Some(x) = edits.execstack {
        assert_eq!(after.execstack, Some(x), "execstack");
    }
    if edits.no_default_lib {
        assert!(after.no_default_lib, "DF_1_NODEFLIB");
    }
    if let Some(abi) = edits.os_abi {
        assert_eq!(after.osabi, abi, "EI_OSABI");
    }
}

/// The load-segment invariants of an image; `Err` says which broke.
pub fn loads_sound(data: &[u8]) -> Result<(), String> {
    // Only the headers: how goblin sizes other tables (relocations'
    // symbol indices, say) is not what this checks.
    let header =
        goblin::elf::Elf::parse_header(data).map_err(|e| format!("bad ELF header: {e}"))?;
    let ctx = goblin::container::Ctx::new(
        if header.e_ident[4] == 2 {
            goblin::container::Container::Big
        } else {
            goblin::container::Container::Little
        },
        if header.e_ident[5] == 2 {
            goblin::container::Endian::Big
        } else {
            goblin::container::Endian::Little
        },
    );
    let phdrs = goblin::elf::ProgramHeader::parse(
        data,
        header.e_phoff as usize,
        header.e_phnum as usize,
        ctx,
    )
    .map_err(|e| format!("program headers do not parse: {e}"))?;
    let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    for w in loads.windows(2) {
        if w[1].p_vaddr < w[0].p_vaddr {
            return Err("PT_LOADs not sorted by address".into());
        }
        let end0 = w[0]
            .p_vaddr
            .checked_add(w[0].p_memsz)
            .ok_or("p_memsz overflows")?;
        if end0 > w[1].p_vaddr {
            return Err(format!(
                "PT_LOADs overlap in memory: {:#x}+{:#x} and {:#x}",
                w[0].p_vaddr, w[0].p_memsz, w[1].p_vaddr
            ));
        }
    }
    for p in &loads {
        if p.p_align > 1 && p.p_offset % p.p_align != p.p_vaddr % p.p_align {
            return Err(format!(
                "PT_LOAD at {:#x} not congruent to its alignment",
                p.p_vaddr
            ));
        }
        if p.p_offset
            .checked_add(p.p_filesz)
            .is_none_or(|e| e > data.len() as u64)
        {
            return Err(format!(
                "PT_LOAD at {:#x} beyond the end of the file",
                p.p_vaddr
            ));
        }
    }
    Ok(())
}

/// The bytes of every executable section that an executable `PT_LOAD`
/// maps from where the section header says (the code the loader runs),
/// keyed by name and address.
fn code(data: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
    let Ok(elf) = goblin::elf::Elf::parse(data) else {
        return vec![];
    };
    let mapped = |s: &goblin::elf::SectionHeader| {
        elf.program_headers.iter().any(|p| {
            p.p_type == PT_LOAD
                && p.p_flags & PF_X != 0
                && s.sh_addr >= p.p_vaddr
                && s.sh_addr.saturating_add(s.sh_size) <= p.p_vaddr.saturating_add(p.p_filesz)
                && s.sh_addr - p.p_vaddr == s.sh_offset.wrapping_sub(p.p_offset)
        })
    };
    elf.section_headers
        .iter()
        .filter(|s| s.sh_type == SHT_PROGBITS && s.sh_flags & u64::from(SHF_EXECINSTR) != 0)
        .filter(|s| mapped(s))
        .filter_map(|s| {
            let end = s.sh_offset.checked_add(s.sh_size)?;
            let bytes = data.get(s.sh_offset as usize..end as usize)?;
            let name = elf.shdr_strtab.get_at(s.sh_name).unwrap_or("").to_owned();
            Some((name, s.sh_addr, bytes.to_vec()))
        })
        .collect()
}

/// Executable sections keep their bytes (wherever the section headers
/// now put them).
fn code_unchanged(before: &[u8], after: &[u8]) {
    let old = code(before);
    if old.is_empty() {
        return;
    }
    let new = code(after);
    for (name, addr, bytes) in &old {
        // A section overlapping the headers the edit rewrote is not code
        // the loader would run; only sections found again are compared.
        // Two sections may share a name and an address (a damaged table):
        // the one with the same size is the same section.
        let same =
            |(n, a, b): &&(String, u64, Vec<u8>)| n == name && a == addr && b.len() == bytes.len();
        if let Some((_, _, now)) = new.iter().find(same) {
            assert!(
                now == bytes,
                "section {name} at {addr:#x} changed ({} bytes)",
                bytes.len()
            );
        }
    }
}

/// Setting the values the file already has changes nothing.
fn idempotent(out: &[u8], edits: &Edits) {
    let again = Edits {
        runpath: match &edits.runpath {
            RunpathEdit::Add(_) => RunpathEdit::Keep,
            r => r.clone(),
        },
        add_needed: vec![],
        remove_needed: vec![],
        replace_needed: vec![],
        ..edits.clone()
    };
    match patch_bytes(out, &again) {
        Ok(twice) => assert!(
            twice == out,
            "a second identical edit changed the file: {again:?}"
        ),
        Err(e) => panic!("a second identical edit failed: {e:?}\n{again:?}"),
    }
}
