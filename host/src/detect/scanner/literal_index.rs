//! Every required literal found in a block without building an automaton:
//! the literals bucketed by their first four bytes, and one pass over the
//! block that looks each position's four bytes up.
//!
//! The standard pack has about 1,700 literals. An Aho-Corasick automaton
//! over them takes about 9 ms to build — most of a small log's whole run —
//! and searching them one by one costs a searcher and a pass per literal.
//! This index is built in tens of microseconds and finds them all in one
//! pass, at a few nanoseconds per byte: the way for a one-shot command's
//! log, while a daemon builds the automaton once and shares it.

use memchr::memmem;

/// Buckets of the hashed four-byte prefixes (a power of two).
const BUCKET_BITS: u32 = 12;
/// Literals shorter than this are searched one by one.
const PREFIX: usize = 4;

/// The literals (ASCII lower case) by their first [`PREFIX`] bytes.
#[derive(Debug)]
pub(super) struct LiteralIndex {
    /// Where each bucket's ids start in `ids` (one more entry at the end).
    starts: Vec<u32>,
    /// Literal ids, bucket by bucket.
    ids: Vec<u32>,
    /// Literals shorter than [`PREFIX`], by id.
    short: Vec<u32>,
}

fn bucket(prefix: &[u8]) -> usize {
    let mut four = [0u8; PREFIX];
    four.copy_from_slice(&prefix[..PREFIX]);
    (u32::from_le_bytes(four).wrapping_mul(0x9E37_79B1) >> (32 - BUCKET_BITS)) as usize
}

impl LiteralIndex {
    /// Indexes `literals` (already ASCII lower case; ids are positions).
    pub(super) fn build(literals: &[String]) -> LiteralIndex {
        let buckets = 1usize << BUCKET_BITS;
        let mut counts = vec![0u32; buckets + 1];
        let mut short = Vec::new();
        for (id, lit) in literals.iter().enumerate() {
            match lit.as_bytes().get(..PREFIX) {
                Some(prefix) => counts[bucket(prefix) + 1] += 1,
                None if lit.is_empty() => {}
                None => short.push(id as u32),
            }
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut next = counts;
        let mut ids = vec![0u32; starts[buckets] as usize];
        for (id, lit) in literals.iter().enumerate() {
            if let Some(prefix) = lit.as_bytes().get(..PREFIX) {
                let b = bucket(prefix);
                ids[next[b] as usize] = id as u32;
                next[b] += 1;
            }
        }
        LiteralIndex { starts, ids, short }
    }

    /// Calls `f(literal id, offset)` for every occurrence of a literal in
    /// `lower` (the block in ASCII lower case; overlapping occurrences
    /// included, except of one short literal).
    pub(super) fn for_each_match(
        &self,
        literals: &[String],
        lower: &[u8],
        mut f: impl FnMut(usize, usize),
    ) {
        for &id in &self.short {
            if let Some(lit) = literals.get(id as usize) {
                for at in memmem::find_iter(lower, lit.as_bytes()) {
                    f(id as usize, at);
                }
            }
        }
        let Some(last) = lower.len().checked_sub(PREFIX) else {
            return;
        };
        for at in 0..=last {
            let b = bucket(&lower[at..]);
            let (from, to) = (self.starts[b] as usize, self.starts[b + 1] as usize);
            for &id in &self.ids[from..to] {
                if let Some(lit) = literals.get(id as usize)
                    && lower[at..].starts_with(lit.as_bytes())
                {
                    f(id as usize, at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index finds what searching each literal on its own finds (and
    /// the overlapping occurrences that search skips).
    #[test]
    fn finds_every_occurrence_a_literal_search_finds() {
        let literals: Vec<String> = [
            "error", "err", "e", "rror:", "npm err!", "fatal: ", "aaaa", "ab", "timeout",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let index = LiteralIndex::build(&literals);
        let block = "npm err! error: fatal: aaaaaa\nerror\ntime\ntimeout ab e";
        let mut found = Vec::new();
        index.for_each_match(&literals, block.as_bytes(), |id, at| found.push((id, at)));
        found.sort_unstable();
        let mut want = Vec::new();
        for (id, lit) in literals.iter().enumerate() {
            let mut from = 0;
            while let Some(at) = block[from..].find(lit.as_str()) {
                want.push((id, from + at));
                from += at + 1;
            }
        }
        want.sort_unstable();
        // Short literals are searched without overlaps; none overlap here.
        assert_eq!(found, want);
        assert!(
            found.contains(&(6, 23)) && found.contains(&(6, 25)),
            "overlaps"
        );
    }

    #[test]
    fn blocks_shorter_than_a_prefix_and_empty_literals_are_fine() {
        let literals: Vec<String> = ["", "ab", "abcd"].iter().map(|s| s.to_string()).collect();
        let index = LiteralIndex::build(&literals);
        let mut found = Vec::new();
        index.for_each_match(&literals, b"xab", |id, at| found.push((id, at)));
        assert_eq!(found, [(1, 1)]);
        index.for_each_match(&literals, b"", |id, at| found.push((id, at)));
        assert_eq!(found, [(1, 1)]);
    }
}
