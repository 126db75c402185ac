//! The user-facing CLI: `ferrocert status|renew|revoke|inspect|convert`, also run as the kubectl
//! plugin `kubectl ferrocert ...` when the binary is invoked as `kubectl-ferrocert`.
//!
//! Every command has the same shape: read objects from the API server (the edge, [`connect`] and
//! the `run` functions), turn them into a report struct (pure, from the objects and the clock),
//! then format that report as aligned text or serialize it as JSON (pure). The formatting
//! functions are unit-tested with hand-built objects; `tests/cli.rs` runs the binary against the
//! local environment.
//!
//! Nothing here prints key material: private keys are parsed only to name their algorithm and to
//! check them against the certificate.
//!
//! `convert` is the exception: it reads cert-manager YAML from files or stdin, needs no API
//! server, and picks its own exit codes (see [`convert`]).

pub mod convert;
pub mod inspect;
pub mod policy;
pub mod renew;
pub mod revoke;
pub mod status;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use kube::Client;

pub use convert::ConvertArgs;
pub use inspect::InspectArgs;
pub use policy::PolicyArgs;
pub use renew::RenewArgs;
pub use revoke::RevokeArgs;
pub use status::StatusArgs;

/// The name kubectl looks for on `PATH` to run `kubectl ferrocert ...`.
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl-ferrocert";

/// Whether the process was started under the kubectl plugin name (the file name of `argv[0]`).
pub fn invoked_as_kubectl_plugin(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|name| name == KUBECTL_PLUGIN_NAME)
}

/// How to reach the API server; shared by every command that talks to it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Namespace of the object (default: the kubeconfig context's namespace, else `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// Output format of the reporting commands.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned text, like `kubectl describe`.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Everything a CLI command can fail with. Messages name the object, because they are all the
/// user sees (printed as `error: ...` with a non-zero exit code).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("reading the kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no usable Kubernetes configuration: {0}")]
    Config(String),
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid --timeout: {0}")]
    InvalidTimeout(String),
    #[error(
        "timed out after {timeout} waiting for Certificate {namespace}/{name} to be re-issued \
         (last seen: {last}); is the controller running? `ferrocert status {name} -n {namespace}` \
         shows the order, challenges and Events"
    )]
    Timeout {
        namespace: String,
        name: String,
        timeout: String,
        last: String,
    },
    #[error("writing the output: {0}")]
    Output(String),
}

impl CliError {
    /// Maps a kube error on one object: 404 becomes [`CliError::NotFound`], anything else keeps
    /// the API server's message with the action that failed.
    pub fn from_kube(kind: &'static str, namespace: &str, name: &str, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if status.code == 404 => CliError::NotFound {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            source => CliError::Kube {
                action: format!("reading {kind} {namespace}/{name}"),
                source,
            },
        }
    }
}

/// A client and the namespace to use: `-n` if given, else the kubeconfig context's namespace
/// (or the service account's namespace in a pod), else `default`.
pub async fn connect(args: &KubeArgs) -> Result<(Client, String), CliError> {
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                CliError::Kubeconfig {
                    path: path.clone(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| CliError::Config(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| CliError::Config(e.to_string()))?,
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|source| CliError::Kube {
        action: "creating the Kubernetes client".into(),
        source,
    })?;
    Ok((client, namespace))
}

/// Runs an async command on a small runtime; the CLI does a handful of requests, one thread is
/// plenty.
pub fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(
    future: F,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future)?)
}

/// Writes a command's output to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Output(e.to_string())),
    }
}

/// Serializes a report as pretty JSON with a trailing newline.
pub(crate) fn to_json<T: serde::Serialize>(report: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(report)
        .map(|s| s + "\n")
        .map_err(|e| CliError::Output(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Text layout helpers, shared by the commands.

/// Appends `key: value` rows with the values aligned in one column, indented by `indent`
/// spaces. Multi-line values continue under the value column.
pub(crate) fn push_fields(out: &mut String, indent: usize, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    for (key, value) in rows {
        let label = format!("{key}:");
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        let line = format!("{:indent$}{label:<width$}  {first}", "");
        out.push_str(line.trim_end());
        out.push('\n');
        for more in lines {
            let line = format!("{:indent$}{:width$}  {more}", "", "");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// Appends a table with a header row and a dashed underline, columns padded to their widest
/// cell (the last column is not padded), indented by `indent` spaces.
pub(crate) fn push_table(out: &mut String, indent: usize, header: &[&str], rows: &[Vec<String>]) {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let underline: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header)
        .chain(std::iter::once(&underline))
        .chain(rows)
    {
        let mut line = " ".repeat(indent);
        for (i, cell) in row.iter().enumerate().take(columns) {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `<none>` for an absent value, as kubectl prints it.
pub(crate) fn or_none(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "<none>".to_string(), |v| v.to_string())
}

/// A comma-separated list, or `<none>`.
pub(crate) fn list_or_none<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "<none>".to_string()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A short human duration, as kubectl prints ages: `45s`, `12m`, `5h`, `3d`, `2y`.
pub(crate) fn human_duration(d: SignedDuration) -> String {
    let secs = d.as_secs().unsigned_abs();
    match secs {
        0..120 => format!("{secs}s"),
        120..7_200 => format!("{}m", secs / 60),
        7_200..172_800 => format!("{}h", secs / 3_600),
        172_800..63_072_000 => format!("{}d", secs / 86_400),
        _ => format!("{}y", secs / 31_536_000),
    }
}

/// An instant relative to now: `in 59d` or `5m ago`.
pub(crate) fn relative(at: Timestamp, now: Timestamp) -> String {
    let d = at.duration_since(now);
    if d.is_negative() {
        format!("{} ago", human_duration(d))
    } else {
        format!("in {}", human_duration(d))
    }
}

/// An instant as RFC 3339 (whole seconds) followed by its distance from now.
pub(crate) fn when(at: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", rfc3339_seconds(at), relative(at, now))
}

/// RFC 3339 in UTC with whole seconds: `2025-01-01T00:00:00Z`.
pub(crate) fn rfc3339_seconds(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
pub(crate) mod test_support {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub fn time(s: &str) -> Time {
        Time(ts(s))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::ts;
    use super::*;

    #[test]
    fn plugin_name_is_detected_from_the_file_name() {
        assert!(invoked_as_kubectl_plugin(OsStr::new("kubectl-ferrocert")));
        assert!(invoked_as_kubectl_plugin(OsStr::new(
            "/home/me/.local/bin/kubectl-ferrocert"
        )));
        assert!(!invoked_as_kubectl_plugin(OsStr::new("ferrocert")));
        assert!(!invoked_as_kubectl_plugin(OsStr::new(
            "/usr/bin/kubectl-ferrocert-old"
        )));
        assert!(!invoked_as_kubectl_plugin(OsStr::new("")));
    }

    #[test]
    fn fields_align_on_the_widest_key() {
        let mut out = String::new();
        push_fields(
            &mut out,
            2,
            &[
                ("Name", "web".into()),
                ("Renewal Time", "soon".into()),
                ("Empty", String::new()),
                ("Multi", "one\ntwo".into()),
            ],
        );
        assert_eq!(
            out,
            "  Name:          web\n  Renewal Time:  soon\n  Empty:\n  Multi:         one\n                 two\n"
        );
    }

    #[test]
    fn tables_pad_all_but_the_last_column() {
        let mut out = String::new();
        push_table(
            &mut out,
            2,
            &["Type", "Reason", "Message"],
            &[
                vec!["Normal".into(), "Issued".into(), "done".into()],
                vec!["Warning".into(), "Failed".into(), String::new()],
            ],
        );
        assert_eq!(
            out,
            "  Type     Reason  Message\n  ----     ------  -------\n  Normal   Issued  done\n  Warning  Failed\n"
        );
    }

    #[test]
    fn human_durations() {
        let s = SignedDuration::from_secs;
        assert_eq!(human_duration(s(0)), "0s");
        assert_eq!(human_duration(s(119)), "119s");
        assert_eq!(human_duration(s(120)), "2m");
        assert_eq!(human_duration(s(-7_199)), "119m");
        assert_eq!(human_duration(s(7_200)), "2h");
        assert_eq!(human_duration(s(172_800)), "2d");
        assert_eq!(human_duration(s(5 * 31_536_000)), "5y");
    }

    #[test]
    fn relative_times() {
        let now = ts("2025-01-10T00:00:00Z");
        assert_eq!(relative(ts("2025-01-09T23:55:00Z"), now), "5m ago");
        assert_eq!(relative(ts("2025-03-10T00:00:00Z"), now), "in 59d");
        assert_eq!(
            when(ts("2025-01-10T00:00:30.5Z"), now),
            "2025-01-10T00:00:30Z (in 30s)"
        );
    }

    #[test]
    fn not_found_names_the_object() {
        let err = CliError::from_kube(
            "Certificate",
            "shop",
            "web",
            kube::Error::Api(
                kube::core::Status::failure(
                    "certificates.ferrocert.dev \"web\" not found",
                    "NotFound",
                )
                .with_code(404)
                .boxed(),
            ),
        );
        assert_eq!(err.to_string(), "Certificate shop/web not found");
    }

    #[test]
    fn none_placeholders() {
        assert_eq!(or_none(None::<String>), "<none>");
        assert_eq!(or_none(Some(3)), "3");
        assert_eq!(list_or_none::<String>(&[]), "<none>");
        assert_eq!(list_or_none(&["a", "b"]), "a, b");
    }
}
