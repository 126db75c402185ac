//! Crash points for the crash sweep (`tests/crash_sweep.rs`): with `FERROCERT_TEST_CRASH_AT` set
//! to the name of a point, the process kills itself with SIGKILL the first time it passes that
//! point, right after the side effect the point names and before the write that records it. This
//! is how the tests show that every side effect is either recorded before it happens or found
//! again after a restart. Unset (always, outside the tests), a point costs one comparison.
//!
//! The points: `account-registered` (the CA created the ACME account), `order-created` (the CA
//! created the order), `challenge-presented` (HTTP-01 route objects applied), `record-presented`
//! (DNS-01 TXT record written), `challenge-told` (the CA was told to validate), `order-finalized`
//! (the CSR was sent), `secret-written` (the certificate is in its Secret).

use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const ENV: &str = "FERROCERT_TEST_CRASH_AT";
/// The environment variable naming the one namespace whose objects crash there (the tests share
/// one API server, where other tests' objects are reconciled too).
pub const NAMESPACE_ENV: &str = "FERROCERT_TEST_CRASH_NAMESPACE";

/// Dies here if `FERROCERT_TEST_CRASH_AT` names `name` and `FERROCERT_TEST_CRASH_NAMESPACE` names
/// `namespace` (the namespace of the object, or of a ClusterIssuer's Secrets); `detail` goes to
/// stderr first (e.g. the URL of what was just created), so a test can check what happened to it
/// after the restart.
pub fn point(name: &str, namespace: &str, detail: &dyn std::fmt::Display) {
    static AT: OnceLock<Option<(String, String)>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        let point = std::env::var(ENV).ok().filter(|v| !v.is_empty())?;
        Some((point, std::env::var(NAMESPACE_ENV).unwrap_or_default()))
    });
    if at
        .as_ref()
        .is_some_and(|(p, ns)| p == name && ns == namespace)
    {
        eprintln!("crash point {name} reached: {detail}");
        // SAFETY: kill(2) on our own pid; nothing after it runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
