//! A detector for failed tests. Pattern rules can say "a test failed"; this
//! detector follows a test runner's output across lines to say *which* tests
//! failed (facts `test = …`), which is what `rerun-failed-tests` needs to
//! re-run only those. It recognises pytest, unittest, jest/vitest, go test,
//! cargo test, Maven surefire/JUnit, Gradle, RSpec and PHPUnit.

use guard_sdk::{Category, Detector, Evidence, Finding, Job, PluginInfo};

/// At most this many test names are reported; a run with thousands of
/// failures is not healed by re-running them one by one anyway.
const MAX_TESTS: usize = 100;
/// Evidence lines kept per finding.
const MAX_EVIDENCE: usize = 8;

#[derive(Default)]
struct TestFailures {
    framework: Option<&'static str>,
    tests: Vec<String>,
    evidence: Vec<Evidence>,
    /// A summary line saying how many failed ("3 failed"), when seen.
    summary: Option<Evidence>,
    /// PHPUnit numbers its failures only after a "There were N failures" line.
    in_phpunit_failures: bool,
}

impl TestFailures {
    fn record(&mut self, framework: &'static str, test: &str, line: u32, text: &str) {
        if self.framework.is_none() {
            self.framework = Some(framework);
        }
        let test = test.trim();
        if !test.is_empty() && self.tests.len() < MAX_TESTS && !self.tests.iter().any(|t| t == test)
        {
            self.tests.push(test.to_string());
        }
        if self.evidence.len() < MAX_EVIDENCE {
            self.evidence.push(Evidence {
                line,
                text: text.to_string(),
            });
        }
    }

    fn summary(&mut self, framework: &'static str, line: u32, text: &str) {
        if self.framework.is_none() {
            self.framework = Some(framework);
        }
        self.summary = Some(Evidence {
            line,
            text: text.to_string(),
        });
    }

    fn scan_line(&mut self, line: u32, text: &str) {
        let t = text.trim_start();
        // pytest: "FAILED tests/test_x.py::test_y - AssertionError"
        if let Some(rest) = t.strip_prefix("FAILED ")
            && let Some(name) = rest.split_whitespace().next()
            && name.contains("::")
        {
            return self.record("pytest", name, line, text);
        }
        // pytest summary: "==== 2 failed, 10 passed in 3.1s ===="
        if t.starts_with('=')
            && t.contains(" failed")
            && (t.contains(" passed") || t.contains(" in "))
        {
            return self.summary("pytest", line, text);
        }
        // unittest: "FAIL: test_x (pkg.tests.TestY)" / "ERROR: test_x (pkg.tests.TestY)"
        for prefix in ["FAIL: ", "ERROR: "] {
            if let Some(rest) = t.strip_prefix(prefix)
                && let Some((name, class)) = rest.split_once(" (")
                && let Some(class) = class.strip_suffix(')')
                && !name.contains(' ')
            {
                return self.record("unittest", &format!("{class}.{name}"), line, text);
            }
        }
        // go test: "--- FAIL: TestName (0.00s)"
        if let Some(rest) = t.strip_prefix("--- FAIL: ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            return self.record("go-test", name, line, text);
        }
        // cargo test: "test path::to::test ... FAILED"
        if let Some(rest) = t.strip_prefix("test ")
            && let Some(name) = rest.strip_suffix(" ... FAILED")
        {
            return self.record("cargo-test", name, line, text);
        }
        // cargo test summary: "test result: FAILED. 1 passed; 2 failed; ..."
        if t.starts_with("test result: FAILED") {
            return self.summary("cargo-test", line, text);
        }
        // jest / vitest: "● Suite › test name"   vitest: " FAIL  src/a.test.ts > suite > name"
        if let Some(rest) = t.strip_prefix("● ")
            && rest.contains(" › ")
        {
            return self.record("jest", rest, line, text);
        }
        if let Some(rest) = t.strip_prefix("FAIL ")
            && rest.contains(" > ")
        {
            return self.record("vitest", rest.trim(), line, text);
        }
        if t.starts_with("Tests:") && t.contains(" failed") {
            return self.summary("jest", line, text);
        }
        // Maven surefire: "[ERROR] testFoo(com.example.FooTest)  Time elapsed: 0.01 s  <<< FAILURE!"
        // or JUnit 5: "[ERROR] com.example.FooTest.testFoo  Time elapsed: ... <<< ERROR!"
        // Most lines hold no `<<<`: one byte search rules out both markers
        // before any substring search (this runs on every line of the log).
        if t.as_bytes().contains(&b'<')
            && (t.contains("<<< FAILURE!") || t.contains("<<< ERROR!"))
            && t.contains("Time elapsed")
        {
            let body = t.trim_start_matches("[ERROR]").trim_start();
            let name = body.split_whitespace().next().unwrap_or_default();
            let name = match name.split_once('(') {
                Some((method, class)) => format!("{}#{method}", class.trim_end_matches(')')),
                None => name.to_string(),
            };
            // A class-level line ("Tests run: …, Failures: 1 … <<< FAILURE! - in com.x.FooTest")
            // names the class after "in".
            if name.starts_with("Tests") {
                if let Some((_, class)) = t.rsplit_once(" in ") {
                    return self.record("junit", class.trim(), line, text);
                }
                return self.summary("junit", line, text);
            }
            return self.record("junit", &name, line, text);
        }
        if t.starts_with("[ERROR]") && t.contains("Tests run:") && t.contains("Failures:") {
            return self.summary("junit", line, text);
        }
        // Gradle: "FooTest > testBar FAILED"
        if let Some(name) = t.strip_suffix(" FAILED")
            && name.contains(" > ")
        {
            return self.record("gradle", name, line, text);
        }
        // RSpec: "rspec ./spec/models/user_spec.rb:12 # User validates email"
        if let Some(rest) = t.strip_prefix("rspec ./") {
            let name = rest.split(" # ").next().unwrap_or(rest);
            return self.record("rspec", name, line, text);
        }
        // PHPUnit: "There were 2 failures:" then "1) Tests\FooTest::testBar"
        if t.starts_with("There w") && (t.contains(" failure") || t.contains(" error")) {
            self.in_phpunit_failures = true;
            return self.summary("phpunit", line, text);
        }
        if self.in_phpunit_failures
            && let Some((n, rest)) = t.split_once(") ")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && rest.contains("::")
        {
            self.record("phpunit", rest, line, text);
        }
    }
}

impl Detector for TestFailures {
    fn info() -> PluginInfo {
        guard_sdk::info(
            "detect-tests",
            env!("CARGO_PKG_VERSION"),
            "Failed tests and their names: pytest, unittest, jest, vitest, go test, cargo test, JUnit, Gradle, RSpec, PHPUnit",
        )
    }

    fn new(_job: Job) -> Self {
        TestFailures::default()
    }

    fn feed(&mut self, chunk: &str, first_line: u32) {
        for (line, text) in guard_sdk::lines(chunk, first_line) {
            self.scan_line(line, text);
        }
    }

    fn finish(&mut self) -> Vec<Finding> {
        let Some(framework) = self.framework else {
            return Vec::new();
        };
        if self.tests.is_empty() && self.summary.is_none() {
            return Vec::new();
        }
        let mut evidence = std::mem::take(&mut self.evidence);
        if let Some(summary) = self.summary.take() {
            evidence.push(summary);
        }
        let mut facts = vec![("framework".to_string(), framework.to_string())];
        facts.extend(self.tests.iter().map(|t| ("test".to_string(), t.clone())));
        // Names make a rerun of just those tests possible, which makes the
        // verdict more certain than a bare summary line.
        let confidence = if self.tests.is_empty() { 0.7 } else { 0.85 };
        vec![Finding {
            rule: format!("tests.{framework}"),
            category: Category::Test,
            failure_type: format!("{framework}-failures"),
            confidence,
            evidence,
            remedies: vec!["rerun-failed-tests".to_string(), "diagnose".to_string()],
            facts,
        }]
    }
}

guard_sdk::detector!(TestFailures);

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(log: &str) -> Vec<Finding> {
        let mut d = TestFailures::default();
        d.feed(log, 1);
        d.finish()
    }

    fn tests_of(f: &Finding) -> Vec<&str> {
        f.facts
            .iter()
            .filter(|(k, _)| k == "test")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn pytest_names_and_lines() {
        let f = scan(
            "collected 3 items\nFAILED tests/test_api.py::test_login - assert 1 == 2\n===== 1 failed, 2 passed in 0.1s =====",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(tests_of(&f[0]), ["tests/test_api.py::test_login"]);
        assert_eq!(f[0].evidence[0].line, 2);
    }

    #[test]
    fn go_and_cargo_and_surefire() {
        assert_eq!(
            tests_of(&scan("--- FAIL: TestParse (0.00s)")[0]),
            ["TestParse"]
        );
        assert_eq!(
            tests_of(&scan("test parser::tests::empty ... FAILED")[0]),
            ["parser::tests::empty"]
        );
        let f = scan("[ERROR] testAdd(com.example.CalcTest)  Time elapsed: 0.01 s  <<< FAILURE!");
        assert_eq!(tests_of(&f[0]), ["com.example.CalcTest#testAdd"]);
    }

    #[test]
    fn passing_output_is_silent() {
        assert!(
            scan("test result: ok. 3 passed; 0 failed\n===== 3 passed in 0.1s =====").is_empty()
        );
    }
}
