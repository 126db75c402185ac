//! `tls.crt` of a tenant's Secret: any text must parse or be refused, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(chain) = ferrocert::pki::parse_chain(text)
    {
        let _ = chain.root_pem();
    }
});
