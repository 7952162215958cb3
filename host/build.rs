//! Builds the standard plugins for wasm32-wasip2 so the `guard` binary can
//! embed them: `guard` works out of the box, and the embedded plugins load
//! through exactly the same WebAssembly path as any plugin from `--plugins`.

use std::{env, fmt::Write as _, fs, path::PathBuf};

include!("guest-build.rs");

/// The standard plugins embedded in the binary.
const PLUGINS: &[&str] = &["pack-std", "detect-tests", "heal-std"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().expect("host/ has a parent").to_path_buf();
    guest_build::rerun_if_changed(&workspace, &["plugins", "sdk", "rules", "wit"]);
    println!("cargo:rerun-if-changed=guest-build.rs");

    let mut packages = PLUGINS.to_vec();
    packages.push("pack-template");
    let mut built = guest_build::build(&workspace, &packages);
    let (_, template) = built.pop().expect("the template was built");
    let mut src = String::from(
        "/// The standard plugins: (package name, component bytes, their sha256 in hex).\npub static EMBEDDED: &[(&str, &[u8], &str)] = &[\n",
    );
    for (name, path) in &built {
        // Hashed here once rather than at every start (megabytes of wasm:
        // milliseconds of every `guard detect`).
        let bytes = fs::read(path).expect("read a built plugin");
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        writeln!(
            src,
            "    ({name:?}, include_bytes!({:?}), {sha:?}),",
            path.display().to_string()
        )
        .expect("write to String");
    }
    src.push_str("];\n");
    writeln!(src, "/// The pattern-pack template filled by `guard pack build`.\npub static PACK_TEMPLATE: &[u8] = include_bytes!({:?});", template.display().to_string()).expect("write to String");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("embedded.rs");
    fs::write(out, src).expect("write embedded.rs");
}
