//! Test guest: a detector whose `feed` never returns (an infinite loop).
//! guard must stop that one call and carry on with every other plugin.

use guard_sdk::{Detector, Finding, Job, PluginInfo};

struct Spin;

impl Detector for Spin {
    fn info() -> PluginInfo {
        guard_sdk::info("guest-spin", "0.1.0", "loops forever in feed")
    }
    fn new(_job: Job) -> Self {
        Spin
    }
    fn feed(&mut self, _chunk: &str, _first_line: u32) {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    fn finish(&mut self) -> Vec<Finding> {
        Vec::new()
    }
}

guard_sdk::detector!(Spin);
