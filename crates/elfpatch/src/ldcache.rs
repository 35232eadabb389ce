//! The NixOS loader's resolution cache: a note (`.note.nixos.ldcache`)
//! that records, for each `DT_NEEDED` library, where the search path finds
//! it, so a patched glibc loader skips the search (patchelf 0.19's
//! `--build-resolution-cache`).
//!
//! The descriptor is a sequence of NUL-terminated (library, path list)
//! pairs, sorted by library name, ending with one more NUL. Each path-list
//! entry is `=<dir>/<lib>` for a library found at patch time, or `?<dir>`
//! for a directory the loader must still search itself (one with a `$`
//! token such as `$ORIGIN`, or with a `glibc-hwcaps` subdirectory).
//! Entries are joined with `:`, in search-path order.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::codec::Codec;
use crate::error::{Result, Unsupported};
use crate::plan::Probe;
use crate::view::View;

/// Name of the note (`n_name`), NUL included.
pub const NOTE_NAME: &[u8] = b"NixOS\0";
/// `n_type` of the resolution-cache note.
pub const NT_NIXOS_LD_CACHE: u32 = 0x63a8_6cb6;
/// Name of the section holding the note.
pub const SECTION_NAME: &str = ".note.nixos.ldcache";

/// Why no cache was written (patchelf warns and leaves the file as the
/// other edits made it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// No `.dynamic` or `.dynstr` section header.
    #[error("no dynamic section (statically linked?); no cache written")]
    NoDynamic,
    /// No `DT_NEEDED` entries, or no search path.
    #[error("no DT_NEEDED entries or run path to resolve; no cache written")]
    NothingToResolve,
    /// No needed library exists in any search-path directory.
    #[error("no libraries resolved against the run path; no cache written")]
    NothingResolved,
}

/// A resolution-cache note already in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    /// Index of its section header.
    pub shdr: usize,
    /// File offset and size of the note.
    pub offset: u64,
    pub size: u64,
    /// Its descriptor, when the note can be read whole.
    pub desc: Option<Vec<u8>>,
}

/// The resolution-cache note of `view`, found by section name like
/// patchelf does.
pub(crate) fn existing(view: &View<'_>) -> Result<Option<Existing>> {
    let found = view.sections_named(SECTION_NAME.as_bytes())?;
    let Some(&shdr) = found.first() else {
        return Ok(None);
    };
    if found.len() > 1 {
        // Which one is the cache? Removing one would make the next "it".
        return Err(crate::Malformed::BadField {
            field: "sections named .note.nixos.ldcache (more than one)",
            value: found.len() as u64,
        }
        .into());
    }
    let sh = &view.shdrs[shdr];
    // Its bytes are cleared when an edit makes it stale: they must be a
    // note's, and not the headers'.
    if sh.sh_type != goblin::elf::section_header::SHT_NOTE {
        return Err(crate::Malformed::BadField {
            field: "sh_type of .note.nixos.ldcache (not SHT_NOTE)",
            value: u64::from(sh.sh_type),
        }
        .into());
    }
    view.check_range(sh.sh_offset, sh.sh_size, "resolution cache note")?;
    view.check_disjoint_from_headers(sh.sh_offset, sh.sh_size, "resolution cache note")?;
    let desc = view
        .read(sh.sh_offset, sh.sh_size, "resolution cache note")
        .ok()
        .and_then(|b| parse_desc(view.codec, &b));
    Ok(Some(Existing {
        shdr,
        offset: sh.sh_offset,
        size: sh.sh_size,
        desc,
    }))
}

/// What the plan does with the resolution-cache note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoteEdit {
    /// Nothing: no cache asked for and none to drop, or the note is current.
    Keep,
    /// The edits made the note stale: its bytes are cleared, its section
    /// header and the program headers that name exactly its bytes dropped.
    Remove(Existing),
    /// A new note (its bytes), with a new `PT_NOTE` and section header.
    Add(Vec<u8>),
    /// A stale note replaced: the old bytes cleared, its `PT_NOTE` and
    /// section header pointed at the new note.
    Replace(Existing, Vec<u8>),
}

impl NoteEdit {
    /// The new note's bytes, if one is written.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            NoteEdit::Add(b) | NoteEdit::Replace(_, b) => Some(b),
            _ => None,
        }
    }

    /// The note the plan stops using.
    pub fn old(&self) -> Option<&Existing> {
        match self {
            NoteEdit::Remove(e) | NoteEdit::Replace(e, _) => Some(e),
            _ => None,
        }
    }
}

/// The file's dependencies before and after the other edits.
pub(crate) struct Deps<'a> {
    pub needed_before: Vec<&'a [u8]>,
    pub needed_after: Vec<&'a [u8]>,
    pub path_before: Option<&'a [u8]>,
    pub path_after: Option<&'a [u8]>,
    /// A search-path removal, or a shrink of a file without one: patchelf
    /// drops the note even when nothing else changes.
    pub path_dropped: bool,
}

/// Decides the note's fate, as patchelf does: edits that change the
/// needed libraries or the search path drop an existing note; a cache is
/// then built from the result. A note still current is kept; one that
/// would be stale is an error, never silently kept.
pub(crate) fn decide(
    view: &View<'_>,
    build: bool,
    deps: &Deps<'_>,
    probe: Probe<'_>,
) -> Result<(NoteEdit, Option<Skipped>)> {
    let old = existing(view)?;
    let stale = deps.path_dropped
        || deps.needed_before != deps.needed_after
        || deps.path_before != deps.path_after;
    let Some(old) = old else {
        if !build {
            return Ok((NoteEdit::Keep, None));
        }
        return Ok(match built(view, deps, probe) {
            Ok(desc) => (NoteEdit::Add(note(view.codec, &desc)), None),
            Err(why) => (NoteEdit::Keep, Some(why)),
        });
    };
    if !build {
        return Ok((
            if stale {
                NoteEdit::Remove(old)
            } else {
                NoteEdit::Keep
            },
            None,
        ));
    }
    match (built(view, deps, probe), stale) {
        (Ok(desc), true) => Ok((NoteEdit::Replace(old, note(view.codec, &desc)), None)),
        (Ok(desc), false) if old.desc.as_deref() == Some(desc.as_slice()) => {
            Ok((NoteEdit::Keep, None))
        }
        (Err(why), true) => Ok((NoteEdit::Remove(old), Some(why))),
        (_, false) => Err(Unsupported::StaleCache.into()),
    }
}

/// The descriptor for the file as the edits leave it; patchelf looks for
/// the dynamic section and its strings by section header.
fn built(
    view: &View<'_>,
    deps: &Deps<'_>,
    probe: Probe<'_>,
) -> std::result::Result<Vec<u8>, Skipped> {
    let has_sections = view.dynamic.as_ref().is_some_and(|d| d.shdr.is_some())
        && view.dynstr.as_ref().is_some_and(|t| t.shdr.is_some());
    if !has_sections {
        return Err(Skipped::NoDynamic);
    }
    describe(&deps.needed_after, deps.path_after, probe)
}

/// The descriptor of one note in `note`, if its sizes fit.
fn parse_desc(codec: Codec, note: &[u8]) -> Option<Vec<u8>> {
    let namesz = u64::from(codec.u32(note, 0)?);
    let descsz = u64::from(codec.u32(note, 4)?);
    let start = 12u64.checked_add(namesz.checked_next_multiple_of(4)?)?;
    let end = start.checked_add(descsz)?;
    note.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
        .map(<[u8]>::to_vec)
}

/// The descriptor for a file needing `needed` with search path `search`
/// (`DT_RUNPATH`, else `DT_RPATH`), probing the file system through
/// `probe`: the first directory holding a library wins, as in the loader,
/// but every directory that does is listed.
pub(crate) fn describe(
    needed: &[&[u8]],
    search: Option<&[u8]>,
    probe: Probe<'_>,
) -> std::result::Result<Vec<u8>, Skipped> {
    let dirs: Vec<&[u8]> = match search {
        Some(s) if !s.is_empty() => s.split(|&b| b == b':').collect(),
        _ => Vec::new(),
    };
    if needed.is_empty() || dirs.is_empty() {
        return Err(Skipped::NothingToResolve);
    }
    // A name with a slash is opened as a path, without searching.
    let searched: Vec<&[u8]> = needed
        .iter()
        .copied()
        .filter(|l| !l.contains(&b'/'))
        .collect();
    let mut cache: BTreeMap<&[u8], Vec<u8>> = BTreeMap::new();
    fn add<'l>(cache: &mut BTreeMap<&'l [u8], Vec<u8>>, lib: &'l [u8], entry: Vec<u8>) {
        let list = cache.entry(lib).or_default();
        if !list.is_empty() {
            list.push(b':');
        }
        list.extend(entry);
    }
    for dir in dirs {
        // An empty entry means the working directory: meaningless to bake in.
        if dir.is_empty() {
            continue;
        }
        let hwcaps = [dir, b"/glibc-hwcaps"].concat();
        if dir.contains(&b'$') || probe.exists(as_path(&hwcaps)) {
            for &lib in &searched {
                add(&mut cache, lib, [b"?", dir].concat());
            }
            continue;
        }
        for &lib in &searched {
            let path = [dir, b"/", lib].concat();
            if probe.readable(as_path(&path)) {
                add(&mut cache, lib, [b"=".as_slice(), &path].concat());
            }
        }
    }
    if cache.is_empty() {
        return Err(Skipped::NothingResolved);
    }
    let mut desc = Vec::new();
    for (lib, list) in cache {
        desc.extend_from_slice(lib);
        desc.push(0);
        desc.extend_from_slice(&list);
        desc.push(0);
    }
    desc.push(0);
    Ok(desc)
}

fn as_path(b: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(b))
}

/// The note holding `desc`: header, name padded to 4, descriptor padded
/// to 4.
pub(crate) fn note(codec: Codec, desc: &[u8]) -> Vec<u8> {
    let name_size = NOTE_NAME.len().next_multiple_of(4);
    let mut b = vec![0; 12 + name_size + desc.len().next_multiple_of(4)];
    codec.put_u32(&mut b, 0, NOTE_NAME.len() as u32);
    codec.put_u32(&mut b, 4, desc.len() as u32);
    codec.put_u32(&mut b, 8, NT_NIXOS_LD_CACHE);
    b[12..12 + NOTE_NAME.len()].copy_from_slice(NOTE_NAME);
    b[12 + name_size..12 + name_size + desc.len()].copy_from_slice(desc);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fs(Vec<&'static str>);
    impl crate::plan::Filesystem for Fs {
        fn machine(&self, _: &Path) -> Option<u16> {
            None
        }
        fn readable(&self, p: &Path) -> bool {
            self.0.iter().any(|f| Path::new(f) == p)
        }
        fn exists(&self, p: &Path) -> bool {
            self.readable(p)
        }
    }

    #[test]
    fn first_found_and_every_other_directory_are_listed_sorted_by_library() {
        let fs = Fs(vec![
            "/a/libz.so",
            "/b/libz.so",
            "/b/libc.so.6",
            "/h/glibc-hwcaps",
        ]);
        let desc = describe(
            &[b"libz.so", b"libc.so.6", b"/abs/libq.so", b"libmissing.so"],
            Some(b"/a:$ORIGIN/../lib::/b:/h"),
            &fs,
        )
        .unwrap();
        let want: &[u8] = b"libc.so.6\0?$ORIGIN/../lib:=/b/libc.so.6:?/h\0\
            libmissing.so\0?$ORIGIN/../lib:?/h\0\
            libz.so\0=/a/libz.so:?$ORIGIN/../lib:=/b/libz.so:?/h\0\0";
        assert_eq!(
            String::from_utf8_lossy(&desc),
            String::from_utf8_lossy(want)
        );
    }

    #[test]
    fn nothing_to_resolve_and_nothing_resolved_are_told_apart() {
        let fs = Fs(vec![]);
        assert_eq!(
            describe(&[], Some(b"/a"), &fs),
            Err(Skipped::NothingToResolve)
        );
        assert_eq!(
            describe(&[b"libz.so"], None, &fs),
            Err(Skipped::NothingToResolve)
        );
        assert_eq!(
            describe(&[b"libz.so"], Some(b"/a"), &fs),
            Err(Skipped::NothingResolved)
        );
    }

    #[test]
    fn the_note_round_trips() {
        let codec = Codec {
            is64: true,
            big: false,
        };
        let n = note(codec, b"libz.so\0=/a/libz.so\0\0");
        assert_eq!(n.len() % 4, 0);
        assert_eq!(&n[12..18], NOTE_NAME);
        assert_eq!(parse_desc(codec, &n).unwrap(), b"libz.so\0=/a/libz.so\0\0");
    }
}
