//! End-to-end: the HTTP-01 listener under a connection flood (issue 12). It answers the CA for
//! every tenant, so running out of file descriptors must not kill it, and a flood of idle
//! connections must not use up the process's descriptors. The controller runs as a process
//! against the test environment; the flood is plain TCP connections that send nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::e2e::{backend_listen, start_controller_with, ureq_get};

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The process's accepted TCP connections on local `port` (its sockets, matched by inode with
/// the kernel's table, that are not the listening one).
fn connections_on(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && f[3] != "0A" && inodes.contains(f[9])
        })
        .count()
}

/// Sets the soft limit only: raising it again needs no privilege.
fn set_nofile(pid: u32, limit: usize) {
    let out = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:"))
        .output()
        .unwrap();
    assert!(out.status.success(), "prlimit: {out:?}");
}

/// The status code the HTTP-01 listener answers a GET for an unknown token with, if it answers.
fn challenge_status(addr: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET /.well-known/acme-challenge/unknown-token HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Opens `n` connections that send nothing.
fn flood(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect()
}

/// Waits until the listener answers 404 for an unknown token.
fn wait_answering(addr: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if challenge_status(addr) == Some(404) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the HTTP-01 listener stopped answering"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_http01_listener_survives_running_out_of_descriptors_and_caps_connections() {
    const CAP: usize = 40;
    let addr = backend_listen();
    let controller = start_controller_with(
        "http01-listener",
        &addr,
        &["--http01-max-connections", &CAP.to_string()],
        &[],
    );
    let healthz = format!("http://{}/healthz", controller.metrics);
    wait_answering(&addr, Duration::from_secs(10));
    let baseline = open_fds(controller.pid);

    // Too few descriptors for the flood (fewer than the cap): accept() fails with EMFILE.
    set_nofile(controller.pid, baseline + 15);
    let held = flood(&addr, 100);
    std::thread::sleep(Duration::from_secs(2));
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(
        log.contains("accepting a connection failed"),
        "the flood did not exhaust the descriptors"
    );
    drop(held);
    set_nofile(controller.pid, 4096);
    // Accepting resumes by itself (the connections still queued are served and closed first).
    let took = wait_answering(&addr, Duration::from_secs(30));
    eprintln!("answering again {took:?} after the flood ended");
    assert!(ureq_get(&healthz).is_some(), "/healthz fails");

    // Enough descriptors: the cap keeps the flood's connections to CAP open ones at a time.
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let before = open_fds(controller.pid);
    let held = flood(&addr, 300);
    assert!(held.len() >= 290, "{} connections made", held.len());
    std::thread::sleep(Duration::from_secs(2));
    let (during, accepted) = (
        open_fds(controller.pid),
        connections_on(controller.pid, port),
    );
    eprintln!(
        "descriptors: {before} before a flood of 300, {during} during it; {accepted} accepted (cap {CAP})"
    );
    assert_eq!(accepted, CAP, "connections accepted during the flood");
    assert!(
        during < before + 300,
        "{during} descriptors (before: {before})"
    );
    drop(held);
    wait_answering(&addr, Duration::from_secs(30));
    assert!(ureq_get(&healthz).is_some(), "/healthz fails");
}
