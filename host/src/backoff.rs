//! Exponential backoff, once for every retry loop in guard: a heal's
//! re-run, a platform request, a queued event, a scheduled re-run that
//! could not fire. Each caller picks its base and cap; the doubling is the
//! same everywhere, and it saturates instead of overflowing.

/// `base × 2^min(n, max_doublings)`, saturating; `n` counts the retries
/// already made (0 for the first wait).
pub fn exponential(base: u64, n: u32, max_doublings: u32) -> u64 {
    base.saturating_mul(1u64 << n.min(max_doublings).min(63))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_saturates() {
        assert_eq!(exponential(5, 0, 10), 5);
        assert_eq!(exponential(5, 3, 10), 40);
        assert_eq!(exponential(5, 50, 10), 5 * 1024);
        assert_eq!(exponential(u64::MAX / 2, 2, 10), u64::MAX);
        assert_eq!(exponential(1, 200, 200), 1 << 63);
    }
}
