use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ferrocert::cli;

/// ferrocert: TLS certificates from ACME CAs, kept in Kubernetes Secrets.
///
/// Also a kubectl plugin: installed (or symlinked) as `kubectl-ferrocert` on PATH, it runs as
/// `kubectl ferrocert ...` with the same commands.
#[derive(Parser)]
#[command(name = "ferrocert", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a Certificate, its Secret, the order in flight, its challenges and recent Events.
    Status(cli::StatusArgs),
    /// Ask the controller to re-issue a Certificate now (through an annotation).
    Renew(cli::RenewArgs),
    /// Ask the controller to revoke a Certificate's current certificate and issue a new one.
    Revoke(cli::RevokeArgs),
    /// Decode objects: `inspect secret NAME` shows a TLS Secret's certificates and key type.
    Inspect(cli::InspectArgs),
    /// Convert cert-manager Issuers, ClusterIssuers and Certificates (YAML) to ferrocert's.
    ///
    /// Reads the files (`-` or none: stdin), writes ferrocert YAML to stdout, and prints on
    /// stderr what was dropped or changed, and why. Exit code 0: nothing lost; 1: some field
    /// could not be converted (the best-effort output is still written); 2: unreadable input.
    Convert(cli::ConvertArgs),
    /// Issuer policies: `policy check -f certificate.yaml` says whether a Certificate would be
    /// allowed by its issuer's `spec.policy`, and by which rule, without creating anything.
    Policy(cli::PolicyArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory.
    Crds {
        /// Write `<plural>.ferrocert.dev.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Run the controller.
    Controller(Box<ferrocert::controller::ControllerArgs>),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    ferrocert::tls::install_crypto_provider();
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let result = match cli.command {
        Command::Controller(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(ferrocert::controller::run(*args))),
        Command::Status(args) => cli::block_on(cli::status::run(args)),
        Command::Renew(args) => cli::block_on(cli::renew::run(args)),
        Command::Revoke(args) => cli::block_on(cli::revoke::run(args)),
        Command::Inspect(args) => cli::block_on(cli::inspect::run(args)),
        Command::Convert(args) => return cli::convert::run(&args),
        Command::Policy(args) => return cli::policy::run(&args),
        Command::Crds { out_dir } => crds(out_dir),
        Command::Version => {
            println!("ferrocert {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. Run as `kubectl-ferrocert` (kubectl's plugin name), help and usage
/// say `kubectl ferrocert`; the commands are the same.
fn parse_args() -> Result<Cli, clap::Error> {
    let mut command = Cli::command();
    if std::env::args_os()
        .next()
        .is_some_and(|argv0| cli::invoked_as_kubectl_plugin(&argv0))
    {
        command = command
            .name(cli::KUBECTL_PLUGIN_NAME)
            .bin_name("kubectl ferrocert")
            .display_name("kubectl ferrocert");
    }
    Cli::from_arg_matches(&command.try_get_matches()?)
}

fn crds(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match out_dir {
        None => print!("{}", ferrocert::crds::all_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in ferrocert::crds::all() {
                std::fs::write(dir.join(file), ferrocert::crds::to_yaml(&crd)?)?;
            }
        }
    }
    Ok(())
}
