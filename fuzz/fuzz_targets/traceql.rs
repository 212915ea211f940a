//! Fuzzes the TraceQL-subset parser (filters come straight from users and
//! HTTP bodies): no input may panic, errors point inside the text, and what
//! parses writes back to a text that parses to the same query and compiles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_traceql::{parse, Filter};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match parse(s) {
        Ok(q) => {
            let text = q.to_string();
            let again = parse(&text).expect("canonical text parses");
            assert_eq!(again, q, "round trip of {text}");
            Filter::new(&q).expect("a parsed query compiles");
        }
        Err(e) => assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{e}"),
    }
});
