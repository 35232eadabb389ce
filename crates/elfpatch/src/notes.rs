//! ELF notes the linker's users care about: the FDO `.note.dlopen`
//! (<https://systemd.io/ELF_DLOPEN_METADATA/>), which lists the libraries a
//! program loads with `dlopen`, so packagers can treat them as needs.
//!
//! The notes are read by [`crate::View`] with the rest of the file (see
//! [`crate::Info::dlopen`]); this module knows their format.

/// `n_type` of an FDO dlopen note.
pub const NT_FDO_DLOPEN_METADATA: u32 = 0x407c_0c0a;

/// The owner name of an FDO dlopen note.
pub(crate) const FDO: &[u8] = b"FDO";

/// Note segments larger than this are not metadata; they are not read.
pub(crate) const MAX_NOTE_SEGMENT: u64 = 1 << 20;

/// Each note of a `PT_NOTE` segment's bytes: (name without its NUL, type,
/// descriptor). Stops at the first note whose sizes overrun the segment.
pub(crate) fn each(
    seg: &[u8],
    u32_at: impl Fn(&[u8], usize) -> Option<u32>,
) -> Vec<(&[u8], u32, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= seg.len() {
        let (Some(namesz), Some(descsz), Some(ntype)) =
            (u32_at(seg, pos), u32_at(seg, pos + 4), u32_at(seg, pos + 8))
        else {
            break;
        };
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let name_at = pos + 12;
        let desc_at = name_at.saturating_add(namesz.div_ceil(4) * 4);
        let Some(desc_end) = desc_at.checked_add(descsz).filter(|&e| e <= seg.len()) else {
            break;
        };
        let name = &seg[name_at..name_at + namesz];
        out.push((
            name.strip_suffix(b"\0").unwrap_or(name),
            ntype,
            &seg[desc_at..desc_end],
        ));
        pos = desc_at.saturating_add(descsz.div_ceil(4) * 4);
    }
    out
}

/// The sonames of a dlopen note's JSON descriptor, one list of
/// alternatives per entry:
/// `[{"feature": "…", "soname": ["libfoo.so.2", "libfoo.so.1"], "priority": "…"}]`
pub(crate) fn parse(json: &[u8]) -> Result<Vec<Vec<String>>, String> {
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
    fn le(b: &[u8], o: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    }

    #[test]
    fn notes_are_split_and_an_overrun_ends_the_walk() {
        let mut seg = Vec::new();
        for (name, ty, desc, claimed) in [
            (&b"FDO\0"[..], 7u32, &b"[]\0\0"[..], 4u32),
            (b"GNU\0", 3, b"abcd", 400),
        ] {
            seg.extend((name.len() as u32).to_le_bytes());
            seg.extend(claimed.to_le_bytes());
            seg.extend(ty.to_le_bytes());
            seg.extend(name);
            seg.extend(desc);
        }
        let notes = super::each(&seg, le);
        assert_eq!(notes, vec![(&b"FDO"[..], 7, &b"[]\0\0"[..])]);
        assert!(super::each(&seg[..10], le).is_empty());
    }

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
