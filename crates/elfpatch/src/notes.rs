//! ELF notes the linker's users care about: the FDO `.note.dlopen`
//! (<https://systemd.io/ELF_DLOPEN_METADATA/>), which lists the libraries a
//! program loads with `dlopen`, so packagers can treat them as needs.
//!
//! Only the ELF header, the program headers and the `PT_NOTE` segments are
//! read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `n_type` of an FDO dlopen note.
pub const NT_FDO_DLOPEN_METADATA: u32 = 0x407c_0c0a;

const PT_NOTE: u32 = 4;
/// Notes larger than this are not metadata; refuse to read them.
const MAX_NOTE_SEGMENT: u64 = 1 << 20;

/// The sonames a file's `.note.dlopen` entries ask for: one list of
/// alternatives per entry (`["libfoo.so.2", "libfoo.so.1"]`). Empty when
/// the file has no such note; an error only when the file cannot be read
/// or the note is not the JSON the specification describes.
pub fn dlopen_sonames(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut ident = [0u8; 64];
    let n = read_at_most(&file, &mut ident, 0)?;
    if n < 52 || !ident.starts_with(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    let is64 = ident[4] == 2;
    let big = ident[5] == 2;
    let u16_at = |b: &[u8], o: usize| {
        if big {
            u16::from_be_bytes([b[o], b[o + 1]])
        } else {
            u16::from_le_bytes([b[o], b[o + 1]])
        }
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        if big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };
    let (phoff, phentsize, phnum) = if is64 {
        (
            u64_at(&ident, 32),
            u16_at(&ident, 54) as u64,
            u16_at(&ident, 56) as u64,
        )
    } else {
        (
            u32_at(&ident, 28) as u64,
            u16_at(&ident, 42) as u64,
            u16_at(&ident, 44) as u64,
        )
    };
    let table = phentsize
        .checked_mul(phnum)
        .filter(|&t| t <= 1 << 20 && phoff.checked_add(t).is_some_and(|e| e <= len));
    let Some(table) = table else {
        return Err("program headers out of bounds".into());
    };
    let mut ph = vec![0u8; table as usize];
    file.read_exact_at(&mut ph, phoff)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for i in 0..phnum as usize {
        let h = &ph[i * phentsize as usize..];
        if h.len() < if is64 { 56 } else { 32 } || u32_at(h, 0) != PT_NOTE {
            continue;
        }
        let (off, size) = if is64 {
            (u64_at(h, 8), u64_at(h, 32))
        } else {
            (u32_at(h, 4) as u64, u32_at(h, 16) as u64)
        };
        if size > MAX_NOTE_SEGMENT || off.checked_add(size).is_none_or(|e| e > len) {
            continue;
        }
        let mut seg = vec![0u8; size as usize];
        file.read_exact_at(&mut seg, off)
            .map_err(|e| e.to_string())?;
        let mut pos = 0usize;
        while pos + 12 <= seg.len() {
            let namesz = u32_at(&seg, pos) as usize;
            let descsz = u32_at(&seg, pos + 4) as usize;
            let ntype = u32_at(&seg, pos + 8);
            let name_at = pos + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let next = desc_at.saturating_add(descsz.div_ceil(4) * 4);
            if desc_at > seg.len() || desc_at + descsz > seg.len() {
                break;
            }
            let name = &seg[name_at..name_at + namesz];
            if ntype == NT_FDO_DLOPEN_METADATA && name.strip_suffix(b"\0").unwrap_or(name) == b"FDO"
            {
                let desc = &seg[desc_at..desc_at + descsz];
                let text = desc.split(|&b| b == 0).next().unwrap_or(&[]);
                out.extend(parse(text)?);
            }
            pos = next;
        }
    }
    Ok(out)
}

fn read_at_most(file: &File, buf: &mut [u8], off: u64) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(n)
}

/// `[{"feature": "…", "soname": ["libfoo.so.2", "libfoo.so.1"], "priority": "…"}]`
fn parse(json: &[u8]) -> Result<Vec<Vec<String>>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!(".note.dlopen is not JSON: {e}"))?;
    let entries = v.as_array().ok_or(".note.dlopen is not a JSON array")?;
    Ok(entries
        .iter()
        .filter_map(|e| e.get("soname")?.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_fdo_format() {
        let j = br#"[{"feature":"x","description":"d","priority":"recommended","soname":["libfoo.so.2","libfoo.so.1"]},{"soname":["libbar.so.0"]}]"#;
        assert_eq!(
            super::parse(j).unwrap(),
            vec![
                vec!["libfoo.so.2".to_owned(), "libfoo.so.1".to_owned()],
                vec!["libbar.so.0".to_owned()]
            ]
        );
        assert!(super::parse(b"{").is_err());
    }
}
