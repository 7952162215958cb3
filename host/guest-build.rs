/// Builds guard's WebAssembly guests (the standard plugins, and in the tests
/// crate the test guests) for `wasm32-wasip2`, in the style of wasmtime's
/// test-programs: a nested `cargo build` into a target directory of its own,
/// so it never contends with the outer build's lock.
///
/// Shared by `host/build.rs` and `tests/build.rs` through `include!`.
#[allow(dead_code, missing_docs)]
mod guest_build {
    use std::{
        env,
        path::{Path, PathBuf},
        process::Command,
    };

    /// The target guests are built for.
    pub const TARGET: &str = "wasm32-wasip2";

    /// Makes sure the wasm32-wasip2 standard library is installed: a
    /// toolchain installed before `rust-toolchain.toml` listed the target
    /// lacks it, and `cargo test` should work without a manual step.
    fn ensure_target() {
        let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output();
        let Ok(out) = sysroot else { return };
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if root.join("lib/rustlib").join(TARGET).exists() {
            return;
        }
        println!("cargo:warning=installing the {TARGET} target with rustup (needed to build guard's plugins)");
        let status = Command::new("rustup").args(["target", "add", TARGET]).status();
        if !matches!(status, Ok(s) if s.success()) {
            println!("cargo:warning=could not install {TARGET}; run: rustup target add {TARGET}");
        }
    }

    /// Builds `packages` (workspace package names) and returns each one's
    /// component path, in the same order.
    pub fn build(workspace: &Path, packages: &[&str]) -> Vec<(String, PathBuf)> {
        ensure_target();
        let target_dir = env::var_os("GUARD_GUEST_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target").join("guest"));
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .arg("build")
            .arg("--target")
            .arg(TARGET)
            .arg("--profile")
            .arg("guest")
            .arg("--target-dir")
            .arg(&target_dir);
        for p in packages {
            cmd.arg("-p").arg(p);
        }
        // The outer build's flags and wrappers are for the host (coverage,
        // clippy-driver, sanitizers); they must not leak into the guests.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTC_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_MAKEFLAGS",
            "MAKEFLAGS",
            "MFLAGS",
            "CARGO_LLVM_COV",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build guests: {e}"));
        if !status.success() {
            panic!(
                "building the WebAssembly guests {packages:?} failed ({status}). \
                 Is the target installed? Run: rustup target add {TARGET}"
            );
        }
        let out = target_dir.join(TARGET).join("guest");
        packages
            .iter()
            .map(|p| {
                let file = out.join(format!("{}.wasm", p.replace('-', "_")));
                assert!(file.exists(), "guest {p} was built but {} is missing", file.display());
                (p.to_string(), file)
            })
            .collect()
    }

    /// Tells cargo to re-run the build script when guest sources change.
    pub fn rerun_if_changed(workspace: &Path, dirs: &[&str]) {
        for d in dirs {
            println!("cargo:rerun-if-changed={}", workspace.join(d).display());
        }
        println!("cargo:rerun-if-env-changed=GUARD_GUEST_TARGET_DIR");
    }

    /// The constant name for a package: `pack-std` → `PACK_STD`.
    pub fn const_name(package: &str) -> String {
        package.to_uppercase().replace('-', "_")
    }
}
