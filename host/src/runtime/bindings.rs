//! Host bindings generated from `wit/`, one module per world. The three
//! worlds import the same capability interfaces, so the healer and pack
//! bindings reuse the detector world's interface modules (`with`), which
//! makes the types identical and lets one linker serve every plugin.

#![allow(missing_docs, clippy::all)]

/// The `detector-plugin` world, and with it every imported interface.
pub mod detector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "detector-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The `healer-plugin` world.
pub mod healer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "healer-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "guard:plugin/types": super::detector::guard::plugin::types,
            "guard:plugin/log": super::detector::guard::plugin::log,
            "guard:plugin/kv": super::detector::guard::plugin::kv,
            "guard:plugin/ci": super::detector::guard::plugin::ci,
            "guard:plugin/exec": super::detector::guard::plugin::exec,
            "guard:plugin/http": super::detector::guard::plugin::http,
            "guard:plugin/fs": super::detector::guard::plugin::fs,
        },
    });
}

/// The `pattern-pack` world.
pub mod pack {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "pattern-pack",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "guard:plugin/types": super::detector::guard::plugin::types,
            "guard:plugin/log": super::detector::guard::plugin::log,
            "guard:plugin/kv": super::detector::guard::plugin::kv,
            "guard:plugin/ci": super::detector::guard::plugin::ci,
            "guard:plugin/exec": super::detector::guard::plugin::exec,
            "guard:plugin/http": super::detector::guard::plugin::http,
            "guard:plugin/fs": super::detector::guard::plugin::fs,
        },
    });
}

pub use detector::guard::plugin::{ci, exec, fs, http, kv, log, types};
