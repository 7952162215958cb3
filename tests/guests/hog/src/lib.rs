//! Test guest: a detector whose `feed` grows memory without bound.

use guard_sdk::{Detector, Finding, Job, PluginInfo};

struct Hog(Vec<Vec<u8>>);

impl Detector for Hog {
    fn info() -> PluginInfo {
        guard_sdk::info("guest-hog", "0.1.0", "allocates without bound in feed")
    }
    fn new(_job: Job) -> Self {
        Hog(Vec::new())
    }
    fn feed(&mut self, _chunk: &str, _first_line: u32) {
        loop {
            let block = vec![1u8; 1 << 20];
            self.0.push(std::hint::black_box(block));
        }
    }
    fn finish(&mut self) -> Vec<Finding> {
        Vec::new()
    }
}

guard_sdk::detector!(Hog);
