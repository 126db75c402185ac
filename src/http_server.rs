//! A small hyper server for our listeners (HTTP-01, metrics and health): HTTP/1 only, headers
//! capped so a client cannot make us buffer much, a cap on open connections, graceful shutdown.
//!
//! The HTTP-01 listener answers the CA for every tenant, so it must not die: an `accept()` error
//! (too many open files, a connection aborted before it was accepted) is logged and accepting
//! resumes after a short pause, instead of ending the server while `/healthz` still says ok. At
//! most `max_connections` connections are open at once; beyond that new ones wait in the
//! kernel's backlog until one closes (a client that opens connections and sends nothing is cut
//! after the header timeout), so a flood cannot use up the process's file descriptors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest request head accepted, in bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a connection may take to send a request head (also the idle limit between requests).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause after a failed `accept()`; it doubles while accepting keeps failing.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause after a failed `accept()`.
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let open = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut pause = ACCEPT_PAUSE;
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return Ok(()), // never closed
            },
            () = &mut shutdown => return Ok(()),
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return Ok(()),
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                pause = ACCEPT_PAUSE;
                stream
            }
            Err(err) => {
                tracing::warn!(%err, ?pause, "accepting a connection failed; accepting again after a pause");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {},
                    () = &mut shutdown => return Ok(()),
                }
                pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(MAX_HEAD_BYTES)
                .header_read_timeout(HEADER_TIMEOUT)
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = conn.await {
                tracing::debug!(%err, "connection ended with an error");
            }
            drop(permit);
        });
    }
}
