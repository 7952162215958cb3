//! The template behind `guard pack build`: a pattern pack whose rules file
//! lives in a fixed-size data region marked by [`MARKER`]. `guard pack
//! build` copies this component and writes a rules file (length-prefixed)
//! into the region, so teams get a real `.wasm` pack without a compiler.
//! The unfilled template is an empty pack named `pack-template`.

use guard_sdk::{Pack, PluginInfo, Rule};

/// Bytes reserved for the rules file (after the marker and length).
pub const CAPACITY: usize = 512 * 1024;
/// Marks the region; `guard pack build` looks for exactly one occurrence.
pub const MARKER: &[u8; 24] = b"GUARD-PACK-TEMPLATE-v1:\n";
const HEADER: usize = MARKER.len() + 4;

/// Marker, little-endian length (0), then spaces: non-zero filler keeps the
/// region in the data section byte for byte.
const fn region() -> [u8; HEADER + CAPACITY] {
    let mut b = [b' '; HEADER + CAPACITY];
    let mut i = 0;
    while i < MARKER.len() {
        b[i] = MARKER[i];
        i += 1;
    }
    b[MARKER.len()] = 0;
    b[MARKER.len() + 1] = 0;
    b[MARKER.len() + 2] = 0;
    b[MARKER.len() + 3] = 0;
    b
}

static REGION: [u8; HEADER + CAPACITY] = region();

/// The rules file written into the region.
fn rules_text() -> &'static str {
    // `black_box` keeps the compiler from folding the reads into the
    // template's own (empty) contents: the bytes are patched after linking.
    let region: &[u8; HEADER + CAPACITY] = std::hint::black_box(&REGION);
    let mut len = [0u8; 4];
    len.copy_from_slice(&region[MARKER.len()..HEADER]);
    let len = (u32::from_le_bytes(len) as usize).min(CAPACITY);
    std::str::from_utf8(&region[HEADER..HEADER + len]).unwrap_or("")
}

/// Only ever named as a type: `pack!` exports its `Pack` impl.
#[allow(dead_code)]
struct TemplatePack;

impl Pack for TemplatePack {
    fn info() -> PluginInfo {
        match guard_sdk::rules_from_toml(rules_text()) {
            Ok((info, _)) => info,
            Err(_) => guard_sdk::info(
                "pack-template",
                env!("CARGO_PKG_VERSION"),
                "Empty pack template for guard pack build",
            ),
        }
    }

    fn rules() -> Vec<Rule> {
        match guard_sdk::rules_from_toml(rules_text()) {
            Ok((_, rules)) => rules,
            Err(e) => {
                if !rules_text().is_empty() {
                    guard_sdk::log::error(&format!("pack rules do not parse: {e}"));
                }
                Vec::new()
            }
        }
    }
}

guard_sdk::pack!(TemplatePack);
