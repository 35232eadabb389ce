//! `redist-bench big`: deterministic generated archives of 0.5, 1.5 and
//! 3 GB (of tar), shaped like NVIDIA's: real ELF libraries (compiled with
//! `cc`) whose large `.nv_fatbin` sections hold generated, text-like data
//! (xz ratio about 3–4), symlink chains to each library, thousands of
//! headers and a few programs. Each size in four formats: single-block xz,
//! multi-block xz (`xz -T`), gzip and zstd. They are kept in a cache
//! directory (default `target/bench-archives`) and made only once.
//!
//! Each archive then goes through `redist bench` (decode alone against
//! `xz -dc`/`gzip -dc`/`zstd -dc`, unpack, the full job against `tar -xf`,
//! peak memory), and the table is printed and, with `--doc FILE`, written
//! between the markers `<!-- generated-archives:begin -->` and
//! `<!-- generated-archives:end -->` of that file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::redist_bin;

const MARK_BEGIN: &str = "<!-- generated-archives:begin -->";
const MARK_END: &str = "<!-- generated-archives:end -->";

#[derive(Clone, Copy, PartialEq)]
enum Fmt {
    Xz,
    XzMulti,
    Gzip,
    Zstd,
}

impl Fmt {
    const ALL: [Fmt; 4] = [Fmt::Xz, Fmt::XzMulti, Fmt::Gzip, Fmt::Zstd];

    fn name(self) -> &'static str {
        match self {
            Fmt::Xz => "xz",
            Fmt::XzMulti => "xz-multiblock",
            Fmt::Gzip => "gzip",
            Fmt::Zstd => "zstd",
        }
    }

    fn file(self, gb: f64) -> String {
        let ext = match self {
            Fmt::Xz => "1block.tar.xz",
            Fmt::XzMulti => "multiblock.tar.xz",
            Fmt::Gzip => "tar.gz",
            Fmt::Zstd => "tar.zst",
        };
        format!("generated-{gb}G.{ext}")
    }

    /// The compressor, reading tar on stdin. xz at preset 2: NVIDIA's
    /// archives decode at about the same speed, and generating 5 GB at
    /// preset 6 would take an hour on two cores.
    fn compressor(self) -> Command {
        let (tool, args): (&str, &[&str]) = match self {
            Fmt::Xz => ("xz", &["-T1", "-2", "-c"]),
            Fmt::XzMulti => ("xz", &["-T2", "-2", "--block-size=48MiB", "-c"]),
            Fmt::Gzip => ("gzip", &["-5", "-c"]),
            Fmt::Zstd => ("zstd", &["-q", "-3", "-T2", "-c"]),
        };
        let mut c = Command::new(tool);
        c.args(args);
        c
    }

    fn parse(s: &str) -> Result<Fmt, String> {
        Fmt::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format {s} (xz, xz-multiblock, gzip, zstd)"))
    }
}

struct Args {
    sizes: Vec<f64>,
    formats: Vec<Fmt>,
    cache: PathBuf,
    runs: usize,
    doc: Option<PathBuf>,
    threads: Option<u32>,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        sizes: vec![0.5, 1.5, 3.0],
        formats: Fmt::ALL.to_vec(),
        cache: PathBuf::from("target/bench-archives"),
        runs: 1,
        doc: None,
        threads: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sizes" => {
                a.sizes = value()?
                    .split(',')
                    .map(|s| s.parse::<f64>().map_err(|e| format!("--sizes {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--formats" => {
                a.formats = value()?
                    .split(',')
                    .map(Fmt::parse)
                    .collect::<Result<_, _>>()?
            }
            "--cache" => a.cache = value()?.into(),
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--doc" => a.doc = Some(value()?.into()),
            "--threads" => {
                a.threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

pub fn run(args: Vec<String>) -> Result<(), String> {
    let a = parse(args)?;
    std::fs::create_dir_all(&a.cache).map_err(|e| format!("{}: {e}", a.cache.display()))?;
    for &gb in &a.sizes {
        let missing: Vec<Fmt> = a
            .formats
            .iter()
            .copied()
            .filter(|f| !a.cache.join(f.file(gb)).exists())
            .collect();
        if !missing.is_empty() {
            generate(&a.cache, gb, &missing)?;
        }
    }
    let mut rows = Vec::new();
    for &gb in &a.sizes {
        for &f in &a.formats {
            let archive = a.cache.join(f.file(gb));
            eprintln!("redist-bench: redist bench {}", archive.display());
            let mut c = Command::new(redist_bin());
            c.arg("bench").arg(&archive).args([
                "--json",
                "--warmup",
                "0",
                "--runs",
                &a.runs.to_string(),
            ]);
            if let Some(t) = a.threads {
                c.args(["--threads", &t.to_string()]);
            }
            let o = c.output().map_err(|e| format!("{c:?}: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "redist bench {} failed: {}",
                    archive.display(),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                .map_err(|e| format!("redist bench printed something else: {e}"))?;
            for r in v.as_array().into_iter().flatten() {
                rows.push(row(gb, f, r));
            }
        }
    }
    let table = table(&rows, a.runs);
    println!("{table}");
    if let Some(doc) = &a.doc {
        splice(doc, &table)?;
        eprintln!("redist-bench: wrote the table into {}", doc.display());
    }
    Ok(())
}

fn stage<'v>(r: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    r["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

fn row(gb: f64, f: Fmt, r: &serde_json::Value) -> Vec<String> {
    let mib =
        |b: &serde_json::Value| format!("{:.0}", b.as_f64().unwrap_or(0.0) / f64::from(1 << 20));
    let s = |v: &serde_json::Value| match v.as_f64() {
        Some(x) => format!("{x:.2} s"),
        None => "–".into(),
    };
    let ratio = |v: &serde_json::Value| match v.as_f64() {
        Some(x) => format!("{x:.2}x"),
        None => "–".into(),
    };
    let (decode, full) = (stage(r, "decode"), stage(r, "full"));
    let rss = full["redist"]["peak_rss"].as_f64().unwrap_or(0.0) / f64::from(1 << 20);
    vec![
        format!("{gb} GB"),
        f.name().into(),
        mib(&r["bytes_in"]),
        mib(&r["bytes_out"]),
        r["decoder_threads"].to_string(),
        s(&decode["redist"]["min_s"]),
        s(&decode["baseline"]["min_s"]),
        ratio(&decode["ratio"]),
        s(&full["redist"]["min_s"]),
        s(&full["baseline"]["min_s"]),
        ratio(&full["ratio"]),
        format!("{:.0}", full["mb_s_out"].as_f64().unwrap_or(0.0)),
        format!("{rss:.0} MiB"),
    ]
}

fn table(rows: &[Vec<String>], runs: usize) -> String {
    let mut t = format!(
        "Best of {runs} run(s), no warm-up, {} cores; decode baseline `xz -T<threads> -dc`, `gzip -dc` or `zstd -dc`; full job baseline `tar -xf` (`tar -I 'xz -T<threads>' -xf` for xz).\n\n\
         | archive | format | MiB in | MiB out | threads | decode | baseline | ratio | full job | tar -xf | ratio | MB/s out | peak RSS |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for r in rows {
        t.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    t
}

/// Replace what lies between the markers in `doc` with `table`.
fn splice(doc: &Path, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(doc).map_err(|e| format!("{}: {e}", doc.display()))?;
    let (Some(b), Some(e)) = (text.find(MARK_BEGIN), text.find(MARK_END)) else {
        return Err(format!(
            "{} has no {MARK_BEGIN} … {MARK_END} markers",
            doc.display()
        ));
    };
    let new = format!("{}{MARK_BEGIN}\n{table}{}", &text[..b], &text[e..]);
    std::fs::write(doc, new).map_err(|e| format!("{}: {e}", doc.display()))
}

/// xorshift64: the same bytes on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Text-like data with some noise: words of a small vocabulary, and
    /// now and then raw bytes (xz -2 packs it about 3-4 to 1).
    fn fill(&mut self, buf: &mut [u8]) {
        const WORDS: [&[u8]; 16] = [
            b"cuda",
            b"kernel",
            b"__global__",
            b"ptx",
            b"sm_90",
            b"float4",
            b"memcpy",
            b"stream",
            b"launch",
            b"grid",
            b"block",
            b"shared",
            b"atomicAdd",
            b"cublas",
            b"\n",
            b"\t",
        ];
        let mut i = 0;
        while i < buf.len() {
            let r = self.next();
            let piece: &[u8] = if r & 0x700 == 0 {
                &r.to_le_bytes()[2..7]
            } else {
                WORDS[(r & 15) as usize]
            };
            let n = piece.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&piece[..n]);
            i += n;
            if i < buf.len() {
                buf[i] = b' ';
                i += 1;
            }
        }
    }
}

/// A compiled template: an ELF file whose `.nv_fatbin` section of `size`
/// bytes starts at `offset`.
struct Template {
    bytes: Vec<u8>,
    offset: usize,
    size: usize,
}

const MARKER: &[u8; 16] = b"REDISTBENCHBLOB!";

fn template(dir: &Path, name: &str, size: usize, program: bool) -> Result<Template, String> {
    let blob = dir.join(format!("{name}.blob"));
    let mut data = vec![0u8; size];
    data[..16].copy_from_slice(MARKER);
    std::fs::write(&blob, &data).map_err(|e| format!("{}: {e}", blob.display()))?;
    let src = dir.join(format!("{name}.c"));
    let code = format!(
        "__asm__(\".section .nv_fatbin,\\\"a\\\"\\n.globl gen_blob_{name}\\ngen_blob_{name}:\\n.incbin \\\"{}\\\"\\n.previous\\n\");\n\
         int gen_value_{name}(void) {{ return 42; }}\n{}",
        blob.display(),
        if program { "int main(void) { return gen_value_" .to_owned() + name + "() == 42 ? 0 : 1; }\n" } else { String::new() }
    );
    std::fs::write(&src, code).map_err(|e| format!("{}: {e}", src.display()))?;
    let out = dir.join(name);
    let mut c = Command::new("cc");
    if program {
        c.args(["-O1", "-o"]);
    } else {
        c.args([
            "-O1",
            "-shared",
            "-fPIC",
            &format!("-Wl,-soname,lib{name}.so.1"),
            "-o",
        ]);
    }
    let ok = c
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if !ok.success() {
        return Err(format!("cc failed to build the {name} template"));
    }
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let offset = bytes
        .windows(16)
        .position(|w| w == MARKER)
        .ok_or("the template lost its marker")?;
    Ok(Template {
        bytes,
        offset,
        size,
    })
}

/// Write the tar stream of a `gb` GB archive to every compressor at once.
fn generate(cache: &Path, gb: f64, formats: &[Fmt]) -> Result<(), String> {
    let total = (gb * 1e9) as u64;
    eprintln!(
        "redist-bench: generating the {gb} GB archive as {} (once; kept in {})…",
        formats
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", "),
        cache.display()
    );
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    const MIB: usize = 1 << 20;
    let sizes = [256 * MIB, 64 * MIB, 16 * MIB, 128 * MIB, 32 * MIB];
    let templates: Vec<Template> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| template(tmp.path(), &format!("gen{i}"), s, false))
        .collect::<Result<_, _>>()?;
    let tool = template(tmp.path(), "tool", MIB, true)?;

    let mut children: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    for &f in formats {
        let dest = cache.join(f.file(gb));
        let partial = cache.join(format!(".{}.partial", f.file(gb)));
        let out =
            std::fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
        let child = f
            .compressor()
            .stdin(Stdio::piped())
            .stdout(out)
            .spawn()
            .map_err(|e| format!("{}: {e}", f.name()))?;
        children.push((child, partial, dest));
    }
    let sinks: Vec<std::process::ChildStdin> = children
        .iter_mut()
        .map(|(c, _, _)| c.stdin.take().expect("piped"))
        .collect();
    let mut tar = tar::Builder::new(FanOut(sinks));
    tar.mode(tar::HeaderMode::Deterministic);
    let root = format!("generated-linux-x86_64-{gb}-archive");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ total);
    let mut written: u64 = 0;
    let add = |tar: &mut tar::Builder<FanOut>,
               path: &str,
               mode: u32,
               data: &[u8]|
     -> Result<(), String> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{root}/{path}"), data)
            .map_err(|e| format!("writing the tar stream: {e}"))
    };
    let link = |tar: &mut tar::Builder<FanOut>, path: &str, target: &str| -> Result<(), String> {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut h, format!("{root}/{path}"), target)
            .map_err(|e| format!("writing the tar stream: {e}"))
    };
    add(&mut tar, "LICENSE", 0o644, b"generated for redist-bench\n")?;
    // Headers: 2000 of 1-8 KiB.
    for i in 0..2000 {
        let mut h = vec![0u8; 1024 * (1 + (i % 8))];
        rng.fill(&mut h);
        add(&mut tar, &format!("include/gen/gen{i}.h"), 0o644, &h)?;
        written += h.len() as u64;
    }
    for i in 0..4 {
        let mut t = tool.bytes.clone();
        rng.fill(&mut t[tool.offset..tool.offset + tool.size]);
        add(&mut tar, &format!("bin/tool{i}"), 0o755, &t)?;
        written += t.len() as u64;
    }
    let mut i = 0;
    while written < total {
        let tpl = &templates[i % templates.len()];
        let mut lib = tpl.bytes.clone();
        rng.fill(&mut lib[tpl.offset..tpl.offset + tpl.size]);
        let name = format!("libgen{i}.so");
        add(&mut tar, &format!("lib/{name}.1.0"), 0o755, &lib)?;
        link(&mut tar, &format!("lib/{name}.1"), &format!("{name}.1.0"))?;
        link(&mut tar, &format!("lib/{name}"), &format!("{name}.1"))?;
        written += lib.len() as u64;
        i += 1;
    }
    let fan = tar
        .into_inner()
        .map_err(|e| format!("finishing the tar stream: {e}"))?;
    drop(fan);
    for (mut child, partial, dest) in children {
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            let _ = std::fs::remove_file(&partial);
            return Err(format!("the compressor for {} failed", dest.display()));
        }
        std::fs::rename(&partial, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    Ok(())
}

/// Every byte to every compressor.
struct FanOut(Vec<std::process::ChildStdin>);

impl Write for FanOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for s in &mut self.0 {
            s.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        for s in &mut self.0 {
            s.flush()?;
        }
        Ok(())
    }
}
