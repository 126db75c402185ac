use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ferrocert: TLS certificates from ACME CAs, kept in Kubernetes Secrets.
#[derive(Parser)]
#[command(name = "ferrocert", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory.
    Crds {
        /// Write `<plural>.ferrocert.dev.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    ferrocert::tls::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds { out_dir: None } => print!("{}", ferrocert::crds::all_yaml()?),
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in ferrocert::crds::all() {
                std::fs::write(dir.join(file), ferrocert::crds::to_yaml(&crd)?)?;
            }
        }
        Command::Version => println!("ferrocert {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
