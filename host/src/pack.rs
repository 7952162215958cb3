//! Pattern packs as files: building a real `pattern-pack` component from a
//! rules file without a compiler (by filling the embedded template's data
//! region), and Ed25519 signatures over pack files (`PACK.wasm.sig`).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// Marks the template's rules region (see `plugins/pack-template`).
const MARKER: &[u8] = b"GUARD-PACK-TEMPLATE-v1:\n";
/// Bytes available for the rules file in the template.
const CAPACITY: usize = 512 * 1024;

/// Errors from building, signing or verifying packs.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The template is not as expected (a build problem, not a user one).
    #[error("the pack template is unusable: {0}")]
    Template(String),
    /// The rules file is too large for the template.
    #[error("the rules file has {0} bytes; a built pack holds at most {CAPACITY}")]
    TooLarge(usize),
    /// The classifier model section is unusable.
    #[error("{0}")]
    Model(String),
    /// A key or signature could not be read.
    #[error("{0}")]
    Key(String),
    /// The signature does not verify with any trusted key.
    #[error("{path}: {reason}")]
    Unverified {
        /// The pack.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A new pack component: the template with `rules_toml` in its region.
pub fn build(template: &[u8], rules_toml: &str) -> Result<Vec<u8>, PackError> {
    let text = rules_toml.as_bytes();
    if text.len() > CAPACITY {
        return Err(PackError::TooLarge(text.len()));
    }
    let mut hits = template
        .windows(MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == MARKER)
        .map(|(i, _)| i);
    let at = hits
        .next()
        .ok_or_else(|| PackError::Template("marker not found".into()))?;
    if hits.next().is_some() {
        return Err(PackError::Template("marker found twice".into()));
    }
    let start = at + MARKER.len();
    if template.len() < start + 4 + CAPACITY {
        return Err(PackError::Template("region truncated".into()));
    }
    let mut out = template.to_vec();
    out[start..start + 4].copy_from_slice(&(text.len() as u32).to_le_bytes());
    out[start + 4..start + 4 + text.len()].copy_from_slice(text);
    // The rest of the region stays filler; only `len` bytes are read.
    Ok(out)
}

/// Name of the custom section in which a pack ships a classifier model
/// (see `detect::classifier`): data, never code, read without running the pack.
pub const MODEL_SECTION: &str = "guard-model";
/// Largest model a pack may carry.
pub const MAX_MODEL_BYTES: usize = 16 << 20;

/// The classifier model a pack carries, if any: the last `guard-model`
/// custom section of the component or of a core module inside it.
pub fn model_section(component: &[u8]) -> Result<Option<Vec<u8>>, PackError> {
    let mut found = None;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload =
            payload.map_err(|e| PackError::Model(format!("unreadable component: {e}")))?;
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == MODEL_SECTION
        {
            if reader.data().len() > MAX_MODEL_BYTES {
                return Err(PackError::Model(format!(
                    "the model section has {} bytes (at most {MAX_MODEL_BYTES})",
                    reader.data().len()
                )));
            }
            found = Some(reader.data().to_vec());
        }
    }
    Ok(found)
}

/// The component with `model` appended as its `guard-model` custom section
/// (custom sections may follow the others; a later one replaces an earlier).
pub fn with_model(component: &[u8], model: &[u8]) -> Result<Vec<u8>, PackError> {
    if model.len() > MAX_MODEL_BYTES {
        return Err(PackError::Model(format!(
            "the model has {} bytes (at most {MAX_MODEL_BYTES})",
            model.len()
        )));
    }
    let mut content = Vec::with_capacity(model.len() + 16);
    leb128(&mut content, MODEL_SECTION.len());
    content.extend_from_slice(MODEL_SECTION.as_bytes());
    content.extend_from_slice(model);
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, content.len());
    out.extend_from_slice(&content);
    Ok(out)
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The signature file of a pack: `PACK.wasm.sig`.
pub fn signature_path(pack: &Path) -> PathBuf {
    let mut s = pack.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// A new signing key: (secret hex, public hex).
pub fn keygen() -> Result<(String, String), PackError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| PackError::Key(format!("no randomness: {e}")))?;
    let key = SigningKey::from_bytes(&secret);
    Ok((
        hex::encode(secret),
        hex::encode(key.verifying_key().as_bytes()),
    ))
}

fn decode<const N: usize>(hex_text: &str, what: &str) -> Result<[u8; N], PackError> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|e| PackError::Key(format!("{what} is not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| PackError::Key(format!("{what} must be {N} bytes, not {}", b.len())))
}

/// Signs `bytes` with the secret key (hex); returns the signature (hex).
pub fn sign(bytes: &[u8], secret_hex: &str) -> Result<String, PackError> {
    let key = SigningKey::from_bytes(&decode::<32>(secret_hex, "secret key")?);
    Ok(hex::encode(key.sign(bytes).to_bytes()))
}

/// Verifies a pack file against its `.sig` and the trusted public keys
/// (hex); returns the key that signed it.
pub fn verify(path: &Path, trusted: &[String]) -> Result<String, PackError> {
    let bytes = std::fs::read(path).map_err(|e| PackError::Unverified {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })?;
    verify_bytes(path, &bytes, trusted)
}

/// Verifies `bytes`, loaded from `path`, against `path`'s `.sig` and the
/// trusted public keys (hex); returns the key that signed it. The bytes
/// checked are the bytes loaded: the file is not read a second time.
pub fn verify_bytes(path: &Path, bytes: &[u8], trusted: &[String]) -> Result<String, PackError> {
    let unverified = |reason: String| PackError::Unverified {
        path: path.to_path_buf(),
        reason,
    };
    let sig_path = signature_path(path);
    let sig_text = std::fs::read_to_string(&sig_path)
        .map_err(|_| unverified(format!("unsigned: no {}", sig_path.display())))?;
    let sig = Signature::from_bytes(
        &decode::<64>(&sig_text, "signature").map_err(|e| unverified(e.to_string()))?,
    );
    if trusted.is_empty() {
        return Err(unverified(
            "no trusted keys configured ([packs] trusted_keys)".into(),
        ));
    }
    for key_hex in trusted {
        let Ok(raw) = decode::<32>(key_hex, "trusted key") else {
            continue;
        };
        let Ok(key) = VerifyingKey::from_bytes(&raw) else {
            continue;
        };
        if key.verify(bytes, &sig).is_ok() {
            return Ok(key_hex.clone());
        }
    }
    Err(unverified(
        "bad signature: it does not verify with any trusted key".into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_standard_pack_ships_a_model_and_built_packs_can_carry_one() {
        let (_, std_pack, _) = crate::embedded::EMBEDDED
            .iter()
            .find(|(n, _, _)| *n == "pack-std")
            .expect("pack-std is embedded");
        let json = model_section(std_pack)
            .expect("readable")
            .expect("a model section");
        let m = crate::detect::classifier::Model::from_json(&json).expect("a valid model");
        assert!(m.classes.len() >= 5 && m.vocab.len() > 1000);
        let built = build(crate::embedded::PACK_TEMPLATE, "[pack]\nid = \"p\"\n").expect("built");
        assert_eq!(model_section(&built).expect("readable"), None);
        let with = with_model(&built, &json).expect("appended");
        assert_eq!(model_section(&with).expect("readable"), Some(json));
        assert!(model_section(b"not wasm").is_err());
    }

    use super::*;

    #[test]
    fn sign_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("p.wasm");
        std::fs::write(&pack, b"component bytes").unwrap();
        let (secret, public) = keygen().unwrap();
        assert!(
            verify(&pack, std::slice::from_ref(&public))
                .unwrap_err()
                .to_string()
                .contains("unsigned")
        );
        std::fs::write(
            signature_path(&pack),
            sign(b"component bytes", &secret).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify(&pack, std::slice::from_ref(&public)).unwrap(),
            public
        );
        let (_, other) = keygen().unwrap();
        assert!(
            verify(&pack, &[other])
                .unwrap_err()
                .to_string()
                .contains("bad signature")
        );
        std::fs::write(&pack, b"tampered bytes!").unwrap();
        assert!(verify(&pack, &[public]).is_err());
    }

    #[test]
    fn build_fills_the_region_once() {
        let mut template = b"head".to_vec();
        template.extend_from_slice(MARKER);
        template.extend_from_slice(&[0; 4]);
        template.extend(std::iter::repeat_n(b' ', CAPACITY));
        let out = build(&template, "rules").unwrap();
        assert_eq!(out.len(), template.len());
        let at = 4 + MARKER.len();
        assert_eq!(&out[at..at + 4], &5u32.to_le_bytes());
        assert_eq!(&out[at + 4..at + 9], b"rules");
        assert!(matches!(
            build(b"no marker", "x"),
            Err(PackError::Template(_))
        ));
    }
}
