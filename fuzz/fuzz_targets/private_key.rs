//! `tls.key` of a tenant's Secret (and an account key), alone and against a certificate: parse or
//! refuse, never panic. The input is `key PEM` + a NUL + `chain PEM`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key_text, chain_text) = text.split_once('\0').unwrap_or((text, ""));
    if let Ok(key) = ferrocert::pki::parse_pem(key_text) {
        let _ = key.pkcs8_der();
        if let Ok(chain) = ferrocert::pki::parse_chain(chain_text) {
            let _ = ferrocert::pki::key_matches_leaf(&key, &chain.leaf);
        }
    }
});
