//! `seeds DIR`: write every target's seeds to `DIR/<target>/<name>` (what
//! `cargo xtask fuzz` starts each fuzzer from).

use std::path::PathBuf;

fn main() {
    let dir: PathBuf = std::env::args_os().nth(1).expect("usage: seeds DIR").into();
    for (target, _) in redist_fuzzcheck::TARGETS {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        let seeds = redist_fuzzcheck::seeds::seeds(target);
        for (name, bytes) in &seeds {
            std::fs::write(d.join(name), bytes).unwrap();
        }
        println!("{target}: {} seeds in {}", seeds.len(), d.display());
    }
}
