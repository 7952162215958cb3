//! Outcome markers: lines with which build tools and CI platforms say a
//! build or job succeeded or failed. Errors printed *before* a success marker
//! were survived (retried steps, tests that expect errors, tolerated
//! warnings), so they do not explain a failure; this is what keeps passing
//! logs full of `[ERROR]` and `Exception` lines from raising alarms.

/// What a normalised line says about the outcome, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A build or job succeeded.
    Success,
    /// A build or job failed.
    Failure,
}

/// Classifies a normalised line. Cheap checks first: this runs on every line.
pub fn marker(text: &str) -> Option<Marker> {
    let t = text.trim();
    if t.len() > 120 {
        return None;
    }
    let t = t
        .strip_prefix("[INFO] ")
        .or_else(|| t.strip_prefix("[ERROR] "))
        .unwrap_or(t);
    if t == "BUILD SUCCESS"
        || t == "BUILD SUCCESSFUL"
        || t.starts_with("BUILD SUCCESSFUL in ")
        || t == "Finished: SUCCESS"
        || t == "Job succeeded"
        || t == "Done. Your build exited with 0."
    {
        return Some(Marker::Success);
    }
    if t == "BUILD FAILURE"
        || t.starts_with("BUILD FAILED")
        || t.starts_with("Finished: FAILURE")
        || t.starts_with("Finished: ABORTED")
        || t.starts_with("Finished: UNSTABLE")
        || t.starts_with("ERROR: Job failed")
        || (t.starts_with("Done. Your build exited with ")
            && t != "Done. Your build exited with 0.")
        || (t.starts_with("Process completed with exit code ")
            && !t.starts_with("Process completed with exit code 0"))
    {
        return Some(Marker::Failure);
    }
    None
}

/// Tracks the last success and failure markers of a log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Line of the last success marker.
    pub last_success: Option<u32>,
    /// Line of the last failure marker.
    pub last_failure: Option<u32>,
}

impl Outcome {
    /// Notes line `number`.
    pub fn line(&mut self, number: u32, text: &str) {
        match marker(text) {
            Some(Marker::Success) => self.last_success = Some(number),
            Some(Marker::Failure) => self.last_failure = Some(number),
            None => {}
        }
    }

    /// The line up to which errors were survived: the last success marker,
    /// unless a failure marker follows it (then nothing is discounted, since
    /// the job failed after the success for a reason the errors may explain).
    pub fn survived_until(&self) -> Option<u32> {
        let s = self.last_success?;
        match self.last_failure {
            Some(f) if f > s => None,
            _ => Some(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(marker("[INFO] BUILD SUCCESS"), Some(Marker::Success));
        assert_eq!(marker("BUILD SUCCESSFUL in 2m 3s"), Some(Marker::Success));
        assert_eq!(marker("Finished: FAILURE"), Some(Marker::Failure));
        assert_eq!(
            marker("Process completed with exit code 1."),
            Some(Marker::Failure)
        );
        assert_eq!(marker("Process completed with exit code 0."), None);
        assert_eq!(marker("echo BUILD SUCCESS is printed by maven"), None);
    }

    #[test]
    fn survived_errors() {
        let mut o = Outcome::default();
        o.line(10, "[INFO] BUILD SUCCESS");
        assert_eq!(o.survived_until(), Some(10));
        o.line(20, "Finished: FAILURE");
        assert_eq!(o.survived_until(), None);
        o.line(30, "Finished: SUCCESS");
        assert_eq!(o.survived_until(), Some(30));
    }
}
