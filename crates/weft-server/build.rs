//! Embeds the web UI: lists every file of `ui/` into `$OUT_DIR/ui_files.rs` as
//! `(name, bytes)` pairs, so the binary serves the UI with no files beside it
//! and a new UI file needs no list kept by hand.

use std::io::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("ui_files.rs");
    let mut f = std::fs::File::create(&out).expect("OUT_DIR is writable");
    writeln!(f, "&[").expect("write");
    for n in names {
        let path = dir.join(&n);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(f, "    ({n:?}, include_bytes!({:?}) as &[u8]),", path.display().to_string()).expect("write");
    }
    writeln!(f, "]").expect("write");
}
