//! Reads a log as raw lines in bounded memory: a line longer than the cap is
//! cut (the rest skipped without buffering it), so an 80 MB single-line log
//! costs no more memory than a short one.

use std::io::{BufRead, ErrorKind};

/// Reads `\n`-terminated lines, keeping at most `cap` bytes of each.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    cap: usize,
    /// Bytes consumed so far.
    pub bytes: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, cap: usize) -> LineReader<R> {
        LineReader {
            inner,
            cap,
            bytes: 0,
        }
    }

    /// Reads the next line into `buf` (without the `\n`). Returns false at
    /// the end of input.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        buf.clear();
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(any);
            }
            any = true;
            let (used, done) = match memchr(available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let content = if done {
                &available[..used - 1]
            } else {
                available
            };
            let room = self.cap.saturating_sub(buf.len());
            buf.extend_from_slice(&content[..content.len().min(room)]);
            self.inner.consume(used);
            self.bytes += used as u64;
            if done {
                return Ok(true);
            }
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_caps_and_last_line_without_newline() {
        let data = format!("a\n{}\nlast", "x".repeat(10_000));
        let mut r = LineReader::new(std::io::BufReader::with_capacity(64, data.as_bytes()), 5);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while r.next_line(&mut buf).unwrap() {
            lines.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(lines, ["a", "xxxxx", "last"]);
        assert_eq!(r.bytes, data.len() as u64);
    }

    #[test]
    fn empty_lines_count() {
        let mut r = LineReader::new(&b"\n\nx\n"[..], 10);
        let mut buf = Vec::new();
        let mut n = 0;
        while r.next_line(&mut buf).unwrap() {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
