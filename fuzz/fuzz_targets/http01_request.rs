//! The HTTP-01 server's request handling: any path and Host header must get an answer (404 for
//! everything but a known token), never a panic. Input: path + NUL + Host header value.
#![no_main]
use std::sync::{Arc, OnceLock};

use ferrocert::solver::http01::server::{TokenSource, router};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct One;

impl TokenSource for One {
    fn key_authorization(&self, token: &str, host: Option<&str>) -> Option<String> {
        (token == "tok-abcdefghijklmnop" && host == Some("example.test"))
            .then(|| format!("{token}.thumb"))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, host) = text.split_once('\0').unwrap_or((text, "example.test"));
    let Ok(request) = http::Request::builder()
        .uri(path)
        .header(http::header::HOST, host)
        .body(axum::body::Body::empty())
    else {
        return;
    };
    let app = router(Arc::new(One));
    let response = runtime().block_on(app.oneshot(request)).unwrap();
    let status = response.status();
    assert!(
        status == http::StatusCode::OK
            || status == http::StatusCode::NOT_FOUND
            || status.is_client_error(),
        "{status}"
    );
});
