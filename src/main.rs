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
    /// Run the controller.
    Controller(Box<ferrocert::controller::ControllerArgs>),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    ferrocert::tls::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Controller(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(ferrocert::controller::run(*args))),
        other => run(other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Crds { out_dir: None } => print!("{}", ferrocert::crds::all_yaml()?),
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in ferrocert::crds::all() {
                std::fs::write(dir.join(file), ferrocert::crds::to_yaml(&crd)?)?;
            }
        }
        Command::Version => println!("ferrocert {}", env!("CARGO_PKG_VERSION")),
        Command::Controller(_) => unreachable!("handled in main"),
    }
    Ok(())
}
