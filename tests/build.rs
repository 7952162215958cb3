//! Builds the standard plugins and the test guests for wasm32-wasip2 (in
//! their own target directory) and exposes each component's path as a
//! constant, e.g. `PACK_STD`, `GUEST_SPIN`, for the integration tests.

use std::{env, fmt::Write as _, fs, path::PathBuf};

include!("../host/guest-build.rs");

const GUESTS: &[&str] = &[
    "pack-std",
    "detect-tests",
    "heal-std",
    "guest-spin",
    "guest-hog",
    "guest-greedy",
    "guest-hostile",
    "guest-hostile-healer",
    "guest-hostile-pack",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    guest_build::rerun_if_changed(
        &workspace,
        &["plugins", "sdk", "rules", "wit", "tests/guests"],
    );
    println!("cargo:rerun-if-changed=../host/guest-build.rs");
    let built = guest_build::build(&workspace, GUESTS);
    let mut src = String::new();
    for (name, path) in &built {
        writeln!(
            src,
            "/// Component built from `{name}`.\n#[allow(dead_code)]\npub const {}: &str = {:?};",
            guest_build::const_name(name),
            path.display().to_string()
        )
        .expect("write to String");
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("guests.rs");
    fs::write(out, src).expect("write guests.rs");
}
