//! What a component is, read from its type alone — before anything of it
//! runs: the world it implements, the guard:plugin version it was built
//! against (and whether this host serves it), and the capability
//! interfaces it imports.

use wasmtime::Engine;
use wasmtime::component::Component;

use super::plugin::PluginKind;
use super::{RuntimeError, WIT_VERSION};

/// What a component is, read from its type alone (no instantiation).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The world it implements.
    pub kind: PluginKind,
    /// The guard:plugin version it was built against.
    pub wit_version: String,
    /// Every export name.
    pub exports: Vec<String>,
    /// Every import name.
    pub imports: Vec<String>,
    /// The guard capability interfaces it imports (its request), e.g. `ci`.
    pub capabilities: Vec<String>,
}

/// Reads a component's world, WIT version and imports from its type.
pub fn inspect(
    engine: &Engine,
    component: &Component,
    origin: &str,
) -> Result<Inspection, RuntimeError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let mut found = None;
    for name in &exports {
        let Some((iface, version)) = guard_interface(name) else {
            continue;
        };
        let kind = match iface {
            "detector" => PluginKind::Detector,
            "healer" => PluginKind::Healer,
            "pack" => PluginKind::Pack,
            _ => continue,
        };
        found = Some((kind, version.to_string()));
        break;
    }
    let Some((kind, wit_version)) = found else {
        return Err(RuntimeError::UnknownWorld {
            origin: origin.into(),
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        });
    };
    if !version_supported(&wit_version) {
        return Err(RuntimeError::UnsupportedWit {
            origin: origin.into(),
            found: wit_version,
            supported: WIT_VERSION.into(),
        });
    }
    for name in &imports {
        if let Some((_, v)) = guard_interface(name)
            && !version_supported(v)
        {
            return Err(RuntimeError::UnsupportedWit {
                origin: origin.into(),
                found: v.to_string(),
                supported: WIT_VERSION.into(),
            });
        }
    }
    let mut capabilities: Vec<String> = imports
        .iter()
        .filter_map(|n| guard_interface(n).map(|(i, _)| i.to_string()))
        .filter(|i| i != "types")
        .collect();
    capabilities.sort();
    capabilities.dedup();
    Ok(Inspection {
        kind,
        wit_version,
        exports,
        imports,
        capabilities,
    })
}

/// `guard:plugin/kv@0.1.0` → `("kv", "0.1.0")`.
pub(crate) fn guard_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("guard:plugin/")?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// Whether this host serves guard:plugin at `version`: same major, and
/// before 1.0 the same minor; the component's version must not be newer.
pub fn version_supported(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let core = v.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    };
    let (Some(have), Some(want)) = (parse(WIT_VERSION), parse(version)) else {
        return false;
    };
    want.0 == have.0 && (have.0 > 0 || want.1 == have.1) && (want.1, want.2) <= (have.1, have.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(
            version_supported("0.1.0"),
            "an older patch (fewer host functions) loads"
        );
        assert!(version_supported("0.1.1"));
        assert!(version_supported("0.1.2"));
        assert!(
            !version_supported("0.1.3"),
            "a newer patch may import what this host lacks"
        );
        assert!(!version_supported("0.2.0"));
        assert!(!version_supported("1.0.0"));
        assert!(!version_supported("0.1.99"));
        assert!(!version_supported(""));
    }

    #[test]
    fn interface_names() {
        assert_eq!(
            guard_interface("guard:plugin/kv@0.1.0"),
            Some(("kv", "0.1.0"))
        );
        assert_eq!(guard_interface("wasi:cli/environment@0.2.6"), None);
    }
}
