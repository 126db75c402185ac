//! ACME problem documents from a CA, as status and Event text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(problem) = serde_json::from_slice::<instant_acme::Problem>(data) {
        let _ = ferrocert::acme::problem_text(&problem);
    }
});
