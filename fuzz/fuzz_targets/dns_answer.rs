//! A DNS answer from a (tenant-chosen) nameserver, judged by the TXT propagation check.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrocert::solver::dns01::propagation::judge_raw_txt_answer(
        data,
        "_acme-challenge.example.test",
        "value",
    );
});
