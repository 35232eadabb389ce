//! A tiny patchelf-like driver over `elfpatch`, for trying edits by hand:
//!
//! ```text
//! cargo run -p elfpatch --example patch -- [EDITS…] FILE
//!   --set-rpath P | --add-rpath P | --remove-rpath | --shrink-rpath
//!   --force-rpath | --set-interpreter P | --set-soname S | --page-size N
//!   --add-needed L | --remove-needed L | --replace-needed OLD NEW | --print
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use elfpatch::{Edits, RunpathEdit};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut edits = Edits::default();
    let mut print = false;
    let mut file = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("missing argument");
        match a.as_str() {
            "--set-rpath" => edits.runpath = RunpathEdit::Set(value()),
            "--add-rpath" => edits.runpath = RunpathEdit::Add(value()),
            "--remove-rpath" => edits.runpath = RunpathEdit::Remove,
            "--shrink-rpath" => {
                edits.runpath = RunpathEdit::Shrink {
                    allowed_prefixes: Vec::new(),
                }
            }
            "--force-rpath" => edits.force_rpath = true,
            "--set-interpreter" => edits.interpreter = Some(value()),
            "--set-soname" => edits.soname = Some(value()),
            "--page-size" => edits.page_size = Some(value().parse().expect("a number")),
            "--add-needed" => edits.add_needed.push(value()),
            "--remove-needed" => edits.remove_needed.push(value()),
            "--replace-needed" => {
                let old = value();
                edits.replace_needed.push((old, value()));
            }
            "--print" => print = true,
            _ => file = Some(PathBuf::from(a)),
        }
    }
    let Some(file) = file else {
        eprintln!("usage: patch [EDITS…] FILE");
        return ExitCode::from(2);
    };
    if !edits.is_empty() {
        match elfpatch::patch_file(&file, &edits) {
            Ok(o) => eprintln!("{o:?}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if print {
        match elfpatch::read(&file) {
            Ok(i) => println!("{i:#?}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
