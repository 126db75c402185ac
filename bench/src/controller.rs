//! The controller under test: `ferrocert controller` as a child process, its start-up time,
//! its `/metrics`, its CPU and memory from `/proc`, and a clean stop.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use std::process::{Child, Command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procstat::{self, ProcStats};

/// How to start the controller.
#[derive(Clone, Debug)]
pub struct Launch {
    pub binary: PathBuf,
    pub kubeconfig: String,
    /// The HTTP-01 listen address (see [`crate::cluster::Env::http01_listen`]).
    pub http01_listen: String,
    /// `--http01-service`.
    pub http01_service: String,
    /// `--http01-self-check-port`: where Traefik listens.
    pub self_check_port: u16,
    pub dns_server: String,
    pub cluster_resource_namespace: String,
    /// Extra flags (e.g. `--concurrency=16`).
    pub extra_args: Vec<String>,
    /// Where each controller's log goes.
    pub log_dir: PathBuf,
}

/// A running controller.
pub struct Controller {
    child: Child,
    pub pid: u32,
    metrics_addr: String,
    /// From spawn until `/readyz` answered 200 (the Certificate cache has synced).
    pub startup: Duration,
    pub log: PathBuf,
}

impl Controller {
    /// Spawns the controller and waits until it is ready. `tag` names its log file.
    pub async fn start(launch: &Launch, tag: &str) -> Result<Self> {
        let http01 = launch.http01_listen.clone();
        wait_port_free(&http01, Duration::from_secs(20)).await?;
        let self_check_port = launch.self_check_port.to_string();
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let log = launch.log_dir.join(format!("controller-{tag}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&launch.binary);
        cmd.arg("controller")
            .args(["--http01-listen", &http01])
            .args(["--metrics-listen", &metrics_addr])
            .args([
                "--cluster-resource-namespace",
                &launch.cluster_resource_namespace,
            ])
            .args(["--dns01-check-nameservers", &launch.dns_server])
            .args(["--http01-service", &launch.http01_service])
            .args(["--http01-self-check-port", &self_check_port])
            .args(["--http01-self-check-nameservers", &launch.dns_server])
            .arg("--http01-self-check-allow-internal=true")
            .args(&launch.extra_args)
            .env("KUBECONFIG", &launch.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_CONTROLLER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file));
        // SAFETY: prctl is async-signal-safe; the child dies with the harness even if the harness
        // is killed, so no controller is ever left behind (and `Drop` kills it on any early
        // return).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", launch.binary.display()))?;
        let pid = child.id();
        let mut controller = Controller {
            child,
            pid,
            metrics_addr,
            startup: Duration::ZERO,
            log,
        };
        controller.wait_ready(spawned).await?;
        Ok(controller)
    }

    async fn wait_ready(&mut self, spawned: Instant) -> Result<()> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the controller exited ({status}) before it was ready; see {}",
                    self.log.display()
                );
            }
            if let Ok((200, _)) = http_get(&self.metrics_addr, "/readyz").await {
                self.startup = spawned.elapsed();
                return Ok(());
            }
            if spawned.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the controller was not ready after 60 s; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The controller's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        match http_get(&self.metrics_addr, "/metrics").await? {
            (200, body) => Ok(body),
            (code, _) => bail!("controller /metrics answered {code}"),
        }
    }

    /// CPU and memory now.
    pub fn stats(&self) -> Result<ProcStats> {
        procstat::read(self.pid)
    }

    /// SIGTERM, then SIGKILL after 15 s; returns once the process is gone.
    pub async fn stop(mut self) -> Result<()> {
        self.terminate().await
    }

    /// Sends SIGTERM and waits (up to 15 s, then SIGKILL) until the process has exited.
    pub async fn terminate(&mut self) -> Result<()> {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        let asked = Instant::now();
        while self.child.try_wait()?.is_none() {
            if asked.elapsed() > Duration::from_secs(15) {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `addr` can be bound (a controller of an earlier run or test may still hold it).
pub async fn wait_port_free(addr: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while TcpListener::bind(addr).is_err() {
        if started.elapsed() > limit {
            bail!("{addr} stays busy: is another controller running on the HTTP-01 port?");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A plain HTTP/1.1 GET over loopback; returns the status code and body.
pub async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .context("reading the response timed out")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

/// Decodes a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The release binary next to the harness, else `target/release/ferrocert`.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ferrocert")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| Path::new("target/release/ferrocert").to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
