//! CPU time and memory of a process, read from `/proc/<pid>` (what the operating system charged
//! it, not what the process says about itself).

use anyhow::{Context, Result, bail};

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcStats {
    /// User + system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size since the process started, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn read(pid: u32) -> Result<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(ProcStats {
        cpu_seconds: cpu_ticks(&stat)? as f64 / clock_ticks_per_second(),
        rss_kib: status_kib(&status, "VmRSS").unwrap_or(0),
        peak_rss_kib: status_kib(&status, "VmHWM").unwrap_or(0),
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its closing parenthesis.
pub fn cpu_ticks(stat: &str) -> Result<u64> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("unexpected /proc stat line: {stat}");
    };
    // `rest` starts at field 3 (state); utime is field 14, i.e. index 11 here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .with_context(|| format!("/proc stat line has no field {}", i + 3))?
            .parse::<u64>()
            .with_context(|| format!("/proc stat field {} is not a number", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// A `Name:   1234 kB` value of `/proc/<pid>/status`.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "4242 (tokio (worker) x) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_ticks(stat).unwrap(), 175);
    }

    #[test]
    fn status_values_in_kib() {
        let status = "Name:\tferrocert\nVmHWM:\t   40960 kB\nVmRSS:\t   30000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(40960));
        assert_eq!(status_kib(status, "VmRSS"), Some(30000));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = read(std::process::id()).unwrap();
        assert!(s.peak_rss_kib >= s.rss_kib && s.rss_kib > 0, "{s:?}");
    }
}
