//! Format detection and the decoder thread.
//!
//! The archive is read and decompressed on a thread of its own, which hands
//! 1 MiB chunks to the thread that parses tar and writes files through a
//! bounded channel. Buffers are recycled, so memory stays at a few MiB (plus
//! what liblzma's multithreaded decoder needs) whatever the archive's size.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Size of the chunks handed from the decoder to the writer.
pub const CHUNK: usize = 1 << 20;
/// Chunks that may wait in the channel; bounds memory.
const IN_FLIGHT: usize = 4;
/// Bytes read before deciding the format: enough for a tar header.
const HEAD: usize = 512;

/// The container formats `redist` reads, chosen by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// xz (LZMA2), decoded in parallel when it has several blocks.
    Xz,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
    /// An uncompressed tar stream.
    Tar,
}

impl Format {
    /// Recognise a format from the first bytes of a stream (up to 512).
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Format::Xz)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::Zstd)
        } else if looks_like_tar(head) {
            Some(Format::Tar)
        } else {
            None
        }
    }

    /// The lower-case name used in reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            Format::Xz => "xz",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Tar => "tar",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A ustar/GNU header has "ustar" at 257; a v7 header only has a checksum.
fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    let field = &head[148..156];
    let digits: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .skip_while(|&&b| b == b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(digits.trim(), 8) else {
        return false;
    };
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    stored == sum && head[0] != 0
}

/// How much an archive may expand: a decompression bomb (a few KB that
/// decode to terabytes) is stopped early with a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decoded bytes at most.
    pub max_bytes: u64,
    /// Decoded bytes per compressed byte at most, checked once more than
    /// [`Limits::RATIO_FLOOR`] bytes are decoded (small archives of zeros
    /// are fine).
    pub max_ratio: u64,
    /// The decoder's memory budget in bytes (`--memory-limit`). liblzma
    /// decodes a multi-block xz on fewer threads to stay within it, and an
    /// archive that needs more even on one thread (a dictionary or zstd
    /// window larger than the budget) is refused. `None`: the threaded xz
    /// decoder may use a quarter of physical memory (as `xz -T0`), one
    /// thread what the archive needs.
    pub memory: Option<u64>,
}

impl Limits {
    /// Below this many decoded bytes the ratio is not checked.
    pub const RATIO_FLOOR: u64 = 16 << 20;

    /// No limits.
    pub fn none() -> Limits {
        Limits {
            max_bytes: u64::MAX,
            max_ratio: u64::MAX,
            memory: None,
        }
    }
}

impl Default for Limits {
    /// 1 TiB and 1000:1. NVIDIA's archives expand 3 to 10 times; xz packs
    /// a file of zeros about 7000:1.
    fn default() -> Limits {
        Limits {
            max_bytes: 1 << 40,
            max_ratio: 1000,
            memory: None,
        }
    }
}

/// Which limit an archive broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// More decoded bytes than `max_bytes`.
    #[error("it decompresses to more than {0} bytes (--max-size; a decompression bomb?)")]
    Size(u64),
    /// A higher ratio than `max_ratio`.
    #[error("it expands more than {0} times (--max-ratio; a decompression bomb?)")]
    Ratio(u64),
    /// Decoding needs more memory than the budget.
    #[error("decoding it needs more memory than --memory-limit allows ({} MiB)", .0 >> 20)]
    Memory(u64),
}

/// What the decoder thread measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeStats {
    /// Compressed bytes read from the source.
    pub bytes_in: u64,
    /// Decompressed bytes handed on.
    pub bytes_out: u64,
    /// Time spent reading and decompressing (not waiting for the writer).
    pub busy: Duration,
    /// Worker threads liblzma was allowed (1 for other formats).
    pub threads: u32,
}

/// A running decoder: the reader side for the tar parser, the thread's
/// handle, and a live count of compressed bytes for progress.
pub struct Decoder {
    /// Decompressed bytes, in order.
    pub reader: ChunkReader,
    /// Live count of compressed bytes read, for progress bars.
    pub bytes_in: Arc<AtomicU64>,
    /// The detected format.
    pub format: Format,
    handle: JoinHandle<Result<DecodeStats>>,
}

impl Decoder {
    /// Detect the format of `src` and start decoding it on a new thread.
    ///
    /// `threads` caps liblzma's multithreaded decoder; multi-block `.xz`
    /// files (made by `xz -T`) decode on that many cores.
    pub fn spawn(
        archive: &str,
        mut src: Box<dyn Read + Send>,
        threads: u32,
        limits: Limits,
    ) -> Result<Decoder> {
        let mut head = Vec::with_capacity(HEAD);
        (&mut src)
            .take(HEAD as u64)
            .read_to_end(&mut head)
            .map_err(|e| source_failure(archive, e))?;
        let format = Format::detect(&head).ok_or_else(|| Error::UnknownFormat {
            archive: archive.to_owned(),
            magic: hex_preview(&head),
        })?;
        let bytes_in = Arc::new(AtomicU64::new(0));
        let source_error = Arc::new(Mutex::new(None));
        let counted = Counting {
            inner: io::Cursor::new(head).chain(src),
            count: bytes_in.clone(),
            error: source_error.clone(),
        };
        let (full_tx, full_rx) = mpsc::sync_channel(IN_FLIGHT);
        let (pool_tx, pool_rx) = mpsc::channel();
        let label = archive.to_owned();
        let threads = threads.max(1);
        let counted_in = bytes_in.clone();
        let handle = thread::Builder::new()
            .name("redist-decode".into())
            .spawn(move || {
                let pump = Pump {
                    full: full_tx,
                    pool: pool_rx,
                    limits,
                    bytes_in: counted_in,
                };
                let result = run(format, counted, threads, limits.memory, &pump);
                let result = result.map_err(|e| {
                    let _ = pump.full.send(Err(()));
                    classify(&label, format, e, &source_error)
                });
                result.map(|(bytes_out, busy)| DecodeStats {
                    bytes_in: 0,
                    bytes_out,
                    busy,
                    threads: if format == Format::Xz { threads } else { 1 },
                })
            })
            .map_err(|source| Error::Read {
                archive: archive.to_owned(),
                source,
            })?;
        Ok(Decoder {
            reader: ChunkReader {
                rx: full_rx,
                pool: pool_tx,
                cur: Vec::new(),
                pos: 0,
                done: false,
                waited: Duration::ZERO,
                trailing_zeros: 0,
            },
            bytes_in,
            format,
            handle,
        })
    }

    /// Split into the reader and a handle that can explain a failed read.
    pub fn into_parts(self) -> (ChunkReader, DecoderHandle, Arc<AtomicU64>, Format) {
        (
            self.reader,
            DecoderHandle(self.handle),
            self.bytes_in,
            self.format,
        )
    }
}

/// The decoder thread, kept apart from its reader so the tar parser can
/// borrow the reader while the pipeline still owns the thread.
pub struct DecoderHandle(JoinHandle<Result<DecodeStats>>);

impl DecoderHandle {
    /// Wait for the thread; its error, if any, is the real cause of a
    /// failed read on the reader side.
    pub fn join(self) -> Result<DecodeStats> {
        join(self.0)
    }
}

fn join(handle: JoinHandle<Result<DecodeStats>>) -> Result<DecodeStats> {
    match handle.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn hex_preview(head: &[u8]) -> String {
    if head.is_empty() {
        return "none, the input is empty".into();
    }
    head.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts compressed bytes and remembers I/O errors of the source itself, so
/// a failing disk is not reported as a corrupt stream.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(e);
                }
                Err(copy)
            }
        }
    }
}

type Msg = std::result::Result<Vec<u8>, ()>;

struct Pump {
    full: SyncSender<Msg>,
    pool: Receiver<Vec<u8>>,
    limits: Limits,
    bytes_in: Arc<AtomicU64>,
}

impl Pump {
    /// Decode `r` to the end, in chunks. Returns bytes produced and busy time.
    fn run(&self, r: &mut dyn Read, out: &mut u64, busy: &mut Duration) -> io::Result<()> {
        loop {
            let mut buf = self.pool.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let start = Instant::now();
            let filled = fill(r, &mut buf)?;
            *busy += start.elapsed();
            if filled == 0 {
                return Ok(());
            }
            buf.truncate(filled);
            *out += filled as u64;
            self.check_limits(*out)?;
            if self.full.send(Ok(buf)).is_err() {
                // The writer stopped (it failed on its own); nothing to do.
                return Ok(());
            }
        }
    }
}

impl Pump {
    fn check_limits(&self, out: u64) -> io::Result<()> {
        let l = self.limits;
        if out > l.max_bytes {
            return Err(io::Error::other(LimitExceeded::Size(l.max_bytes)));
        }
        let compressed = self.bytes_in.load(Ordering::Relaxed).max(1);
        if out > Limits::RATIO_FLOOR && out / compressed > l.max_ratio {
            return Err(io::Error::other(LimitExceeded::Ratio(l.max_ratio)));
        }
        Ok(())
    }
}

fn run<R: Read + Send + 'static>(
    format: Format,
    src: R,
    threads: u32,
    memory: Option<u64>,
    pump: &Pump,
) -> io::Result<(u64, Duration)> {
    let over_budget = |e: io::Error| -> io::Error {
        let Some(limit) = memory else { return e };
        let lzma = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<liblzma::stream::Error>())
            .is_some_and(|l| *l == liblzma::stream::Error::MemLimit);
        // zstd says so only in words.
        let zstd = e.to_string().contains("too much memory");
        if lzma || zstd {
            io::Error::other(LimitExceeded::Memory(limit))
        } else {
            e
        }
    };
    let mut out = 0;
    let mut busy = Duration::ZERO;
    let src = BufReader::with_capacity(1 << 16, src);
    let mut rest = match format {
        Format::Xz => {
            // Concatenated streams are decoded one after the other, as
            // `xz -dc` does (gzip members and zstd frames are too); between
            // them only stream padding (zeros) may appear.
            let mut src: Box<dyn BufRead + Send> = Box::new(src);
            loop {
                let stream = xz_stream(threads, memory).map_err(io::Error::other)?;
                let mut dec = liblzma::bufread::XzDecoder::new_stream(src, stream);
                pump.run(&mut dec, &mut out, &mut busy)
                    .map_err(over_budget)?;
                match another_xz_stream(dec.into_inner())? {
                    (true, next) => src = next,
                    (false, mut rest) => {
                        io::copy(&mut rest, &mut io::sink())?;
                        return Ok((out, busy));
                    }
                }
            }
        }
        Format::Gzip => {
            let mut dec = flate2::bufread::MultiGzDecoder::new(src);
            pump.run(&mut dec, &mut out, &mut busy)?;
            dec.into_inner()
        }
        Format::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(src)?;
            if let Some(limit) = memory {
                // The window is most of what a zstd decoder holds.
                let log = (63 - limit.max(1).leading_zeros()).clamp(10, 31);
                dec.window_log_max(log)?;
            }
            pump.run(&mut dec, &mut out, &mut busy)
                .map_err(over_budget)?;
            dec.finish()
        }
        Format::Tar => {
            let mut src = src;
            pump.run(&mut src, &mut out, &mut busy)?;
            src
        }
    };
    // Read the source to its very end: a verifying source checks its size
    // and hash when it sees end-of-file.
    io::copy(&mut rest, &mut io::sink())?;
    Ok((out, busy))
}

/// liblzma's multithreaded decoder, with an explicit threading memory limit:
/// without one (`new_parallel()`), it silently decodes on one thread.
///
/// With a budget, the threaded decoder uses no more threads than fit in it,
/// and either decoder stops with `MemLimit` when one thread needs more.
fn xz_stream(
    threads: u32,
    memory: Option<u64>,
) -> std::result::Result<liblzma::stream::Stream, liblzma::stream::Error> {
    let stop = memory.unwrap_or(u64::MAX).max(1);
    if threads <= 1 {
        return liblzma::stream::Stream::new_stream_decoder(stop, 0);
    }
    liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        .memlimit_threading(xz_threading_memlimit().min(stop))
        .memlimit_stop(stop)
        .decoder()
}

/// A quarter of physical memory, at least 256 MiB: what `xz -T0` allows.
fn xz_threading_memlimit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(4 << 30);
    (total / 4).max(256 << 20)
}

/// After an xz stream: skip stream padding; `(true, input)` when another
/// stream follows, `(false, input)` at the end of the input, an error for
/// anything else.
fn another_xz_stream(
    mut rest: Box<dyn BufRead + Send>,
) -> io::Result<(bool, Box<dyn BufRead + Send>)> {
    const MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
    loop {
        let buf = rest.fill_buf()?;
        if buf.is_empty() {
            return Ok((false, rest));
        }
        let zeros = buf.iter().take_while(|&&b| b == 0).count();
        if zeros == 0 {
            break;
        }
        rest.consume(zeros);
    }
    // The next six bytes, wherever the buffer ends, then put back in front.
    let mut head = Vec::with_capacity(MAGIC.len());
    (&mut rest)
        .take(MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    if head != MAGIC {
        return Err(trailing());
    }
    Ok((true, Box::new(io::Cursor::new(head).chain(rest))))
}

fn trailing() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected data after the end of the xz stream",
    )
}

fn classify(
    archive: &str,
    format: Format,
    e: io::Error,
    source_error: &Mutex<Option<io::Error>>,
) -> Error {
    if let Some(source) = source_error.lock().ok().and_then(|mut s| s.take()) {
        return source_failure(archive, source);
    }
    if let Some(limit) = e.get_ref().and_then(|i| i.downcast_ref::<LimitExceeded>()) {
        return Error::TooLarge {
            archive: archive.to_owned(),
            limit: *limit,
        };
    }
    // liblzma, flate2 and zstd all report input that ends inside a
    // stream as `UnexpectedEof`.
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::Truncated {
            archive: archive.to_owned(),
            detail: format!("the {format} stream ends early ({e})"),
        }
    } else {
        Error::Corrupt {
            archive: archive.to_owned(),
            format: format.name(),
            cause: e,
        }
    }
}

/// An error of the source itself: a verification mismatch, a broken
/// download, or a plain read error.
pub fn source_failure(archive: &str, e: io::Error) -> Error {
    let kind = e.kind();
    if e.get_ref().is_none() {
        // An OS error: kept whole (its errno says what happened).
        return Error::Read {
            archive: archive.to_owned(),
            source: e,
        };
    }
    match e.into_inner() {
        Some(inner) => match inner.downcast::<crate::source::VerifyError>() {
            Ok(cause) => Error::Verify {
                archive: archive.to_owned(),
                cause: *cause,
            },
            Err(inner) => match inner.downcast::<crate::source::SourceError>() {
                Ok(s) => Error::Source(*s),
                Err(other) => Error::Read {
                    archive: archive.to_owned(),
                    source: io::Error::new(kind, other),
                },
            },
        },
        None => Error::Read {
            archive: archive.to_owned(),
            source: io::Error::from(kind),
        },
    }
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn fill(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The writer's side of the channel: a `Read` over the decoded chunks.
///
/// It also tracks how the stream ends, so a tar archive cut exactly at a
/// header boundary (no end-of-archive blocks) is caught.
pub struct ChunkReader {
    rx: Receiver<Msg>,
    pool: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    waited: Duration,
    trailing_zeros: u64,
}

impl ChunkReader {
    /// Time spent waiting for the decoder.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Whether the consumed stream ends with at least one zero tar block.
    pub fn ends_with_zero_block(&self) -> bool {
        self.trailing_zeros >= 512
    }

    /// Read and discard the rest of the stream (tar padding after the
    /// end-of-archive marker), so the decoder verifies its checksums.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut total = 0;
        let mut sink = vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut sink)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            let start = Instant::now();
            let next = self.rx.recv();
            self.waited += start.elapsed();
            match next {
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.pool.send(old);
                    self.pos = 0;
                }
                Ok(Err(())) => {
                    self.done = true;
                    return Err(io::Error::other(DecoderFailed));
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        let slice = &self.cur[self.pos..self.pos + n];
        buf[..n].copy_from_slice(slice);
        self.pos += n;
        match slice.iter().rposition(|&b| b != 0) {
            Some(i) => self.trailing_zeros = (n - i - 1) as u64,
            None => self.trailing_zeros += n as u64,
        }
        Ok(n)
    }
}

/// Marker error: the decoder thread failed; join it for the cause.
#[derive(Debug)]
pub struct DecoderFailed;

impl fmt::Display for DecoderFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the decoder failed")
    }
}

impl std::error::Error for DecoderFailed {}

/// Whether an I/O error seen by the tar parser is our "decoder failed" marker.
pub fn is_decoder_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<DecoderFailed>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_magic() {
        assert_eq!(Format::detect(b"\xfd7zXZ\0rest"), Some(Format::Xz));
        assert_eq!(Format::detect(b"\x1f\x8b\x08"), Some(Format::Gzip));
        assert_eq!(Format::detect(b"\x28\xb5\x2f\xfd\x00"), Some(Format::Zstd));
        assert_eq!(Format::detect(b"PK\x03\x04"), None);
        assert_eq!(Format::detect(b""), None);
    }

    #[test]
    fn detects_ustar_and_v7_tar_headers() {
        let mut h = tar::Header::new_ustar();
        h.set_path("a").unwrap();
        h.set_cksum();
        assert_eq!(Format::detect(h.as_bytes()), Some(Format::Tar));
        let mut old = tar::Header::new_old();
        old.set_path("a").unwrap();
        old.set_cksum();
        assert_eq!(Format::detect(old.as_bytes()), Some(Format::Tar));
        let mut bad = *old.as_bytes();
        bad[0] = b'b';
        assert_eq!(
            Format::detect(&bad),
            None,
            "a v7 header with a wrong checksum is not tar"
        );
    }

    #[test]
    fn hex_preview_shows_eight_bytes() {
        assert_eq!(hex_preview(b"PK\x03\x04 this"), "50 4b 03 04 20 74 68 69");
    }
}
