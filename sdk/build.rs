//! Writes the export macros with the absolute path of the WIT contract baked
//! in: `wit_bindgen::generate!` resolves relative paths against the crate
//! that *invokes* it (the plugin), so the SDK has to hand it an absolute one.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // In the workspace the contract lives beside the SDK; a packaged SDK
    // carries its own copy.
    let wit = [manifest.join("../wit"), manifest.join("wit")]
        .into_iter()
        .find(|p| p.join("worlds.wit").exists())
        .expect("guard-sdk: cannot find the guard WIT contract (../wit or ./wit)");
    let wit = wit
        .canonicalize()
        .expect("guard-sdk: cannot resolve the WIT path");
    println!("cargo:rerun-if-changed={}", wit.display());
    let wit = wit
        .to_str()
        .expect("guard-sdk: WIT path is not UTF-8")
        .replace('\\', "/");

    let mut out = String::new();
    for (name, world) in [
        ("__guard_generate_detector", "detector-plugin"),
        ("__guard_generate_healer", "healer-plugin"),
        ("__guard_generate_pack", "pattern-pack"),
    ] {
        out.push_str(&format!(
            r#"
#[doc(hidden)]
#[macro_export]
macro_rules! {name} {{
    () => {{
        $crate::__wit_bindgen::generate!({{
            path: "{wit}",
            world: "{world}",
            runtime_path: "::guard_sdk::__wit_bindgen::rt",
            with: {{
                "guard:plugin/types@0.1.2": ::guard_sdk::bindings::guard::plugin::types,
                "guard:plugin/log@0.1.2": ::guard_sdk::bindings::guard::plugin::log,
                "guard:plugin/kv@0.1.2": ::guard_sdk::bindings::guard::plugin::kv,
                "guard:plugin/ci@0.1.2": ::guard_sdk::bindings::guard::plugin::ci,
                "guard:plugin/exec@0.1.2": ::guard_sdk::bindings::guard::plugin::exec,
                "guard:plugin/http@0.1.2": ::guard_sdk::bindings::guard::plugin::http,
                "guard:plugin/fs@0.1.2": ::guard_sdk::bindings::guard::plugin::fs,
            }},
        }});
    }};
}}
"#
        ));
    }
    let dest = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("generate.rs");
    fs::write(dest, out).expect("guard-sdk: cannot write generated macros");
}
