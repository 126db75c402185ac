//! Go durations (spec fields, flags) and `Retry-After` values (CA answers).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ferrocert::pki::parse_go_duration(text);
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let _ = ferrocert::acme::http::parse_retry_after(text, now);
    }
});
