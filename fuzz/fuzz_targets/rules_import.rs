//! Rule import: a rules file (TOML or JSON) as `guard patterns import`
//! reads it, compiled by the scanner and run over a few lines; bad rules
//! must be rejected one by one, never crash, never hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = guard::cli::patterns::parse_rules_file(text) else { return };
    // The format's checks refuse some entries; the scanner gets the rest.
    let rules: Vec<guard::model::Rule> =
        file.rules.into_iter().filter_map(|e| guard::model::Rule::try_from(e).ok()).collect();
    let (set, _errors) = guard::detect::scanner::RuleSet::compile(rules.iter().map(|r| ("fuzz", r)));
    let mut scan = set.scan();
    for (i, line) in ["npm ERR! code ENOTFOUND", "error[E0308]: mismatched types", text].iter().enumerate() {
        scan.line(i as u32 + 1, line, i == 1);
    }
    let _ = scan.finish();
});
