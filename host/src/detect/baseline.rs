//! Baselines: the line templates of a job's last passing run, kept in sled
//! tree `baselines` ([`Trees::BASELINES`]) so that the next failure of the
//! same job can discount the error-looking lines every run prints (see
//! [`super::locator::Locator::with_baseline`]). `guard exec` keeps one per
//! (working directory, command).

use std::collections::HashSet;

use crate::store::{Store, StoreError, Trees};

/// Templates kept per baseline (a passing log of a few hundred thousand
/// distinct lines says little more than its first ones).
const MAX_TEMPLATES: usize = 200_000;
/// Passing logs larger than this are not kept as baselines (the log is read
/// whole to take its templates; a baseline of its first part would mislead).
pub const MAX_LOG_BYTES: u64 = 16 << 20;

/// The baseline key of a local command.
pub fn exec_key(workdir: &str, command: &str) -> String {
    format!("exec\u{1f}{workdir}\u{1f}{command}")
}

/// The templates of a passing log's bytes.
pub fn of_log(bytes: &[u8], max_line_bytes: usize) -> HashSet<u64> {
    let lines = super::normalize::normalized_lines(bytes, max_line_bytes);
    let mut t = super::locator::templates(lines.iter().map(String::as_str));
    if t.len() > MAX_TEMPLATES {
        t = t.into_iter().take(MAX_TEMPLATES).collect();
    }
    t
}

/// Stores the baseline of `key`, replacing the previous one.
pub fn put(store: &Store, key: &str, templates: &HashSet<u64>) -> Result<(), StoreError> {
    let mut sorted: Vec<u64> = templates.iter().copied().collect();
    sorted.sort_unstable();
    store.put(Trees::BASELINES, key, &sorted)
}

/// The baseline of `key`, if a passing run left one.
pub fn get(store: &Store, key: &str) -> Result<Option<HashSet<u64>>, StoreError> {
    Ok(store
        .get(Trees::BASELINES, key)?
        .map(|v| v.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_round_trips_and_masks_what_varies() {
        let store = Store::temporary().expect("store");
        let key = exec_key("/w", "make test");
        assert!(get(&store, &key).expect("read").is_none());
        let t = of_log(b"warning: cache miss 12\nok\n", 8192);
        put(&store, &key, &t).expect("put");
        let back = get(&store, &key).expect("read").expect("stored");
        assert_eq!(back, t);
        let other_run = super::super::locator::template_hash("warning: cache miss 97");
        assert!(back.contains(&other_run));
    }
}
