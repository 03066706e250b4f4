//! The `mirrorgate` binary: arguments, logging, then one subcommand.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use mirrorgate::cmd;

// A proxied request allocates and frees a few dozen small blocks and, as
// hyper's read buffers are handed on, buffers of 8-128 KiB; glibc's allocator
// spent about 14% of the proxy's user time on them (see benches/README.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mirrorgate",
    version,
    about = "Geo-aware mirror redirector and load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve downloads and the admin API until SIGTERM/SIGINT (SIGHUP reloads).
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file: exit 0, or print every error with its place and exit 1.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show what the GeoIP databases say about an address (with no database given: the embedded demo ones).
    Locate {
        /// Take the databases from this config file.
        #[arg(long, short, conflicts_with_all = ["city", "asn"])]
        config: Option<PathBuf>,
        /// A location database (City, Country or ip-location-db layout); repeat for a v4/v6 pair.
        #[arg(long)]
        city: Vec<PathBuf>,
        /// An ASN database.
        #[arg(long)]
        asn: Option<PathBuf>,
        ip: IpAddr,
    },
    /// Show the ranking for a client address and a path, and why each mirror was kept or dropped.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        ip: IpAddr,
        /// Rank as for a client that came over HTTPS (plain-HTTP mirrors are dropped).
        #[arg(long)]
        https: bool,
        /// Do not probe the mirrors first: take every enabled mirror as up.
        #[arg(long)]
        assume_up: bool,
        path: String,
    },
    /// Run a self-contained demo: local mirrors around the world and mirrorgate in front.
    Demo {
        /// Public listener of the demo.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Admin listener of the demo.
        #[arg(long, default_value = "127.0.0.1:8081")]
        admin_listen: std::net::SocketAddr,
    },
    /// Write the manifest of an origin tree (hashes every file): to stdout, or atomically to --output.
    Manifest {
        dir: PathBuf,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write the man pages (DIR/man) and shell completions (DIR/completions) for packaging.
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Loads (GeoIP, manifests, walks) run on blocking threads, and
        // mimalloc gives a thread's freed memory back to the system only once
        // that thread exits: an idle one leaves after a second, not tokio's
        // default ten, so resident memory settles soon after a (re)load.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => cmd::serve(&config).await,
            Command::CheckConfig { config } => cmd::check_config(&config).await,
            Command::Locate {
                config,
                city,
                asn,
                ip,
            } => cmd::locate(config.as_deref(), &city, asn.as_ref(), ip),
            Command::Explain {
                config,
                ip,
                https,
                assume_up,
                path,
            } => cmd::explain(&config, ip, https, assume_up, &path).await,
            Command::Demo {
                listen,
                admin_listen,
            } => cmd::demo(listen, admin_listen).await,
            Command::Manifest { dir, output } => cmd::manifest_command(&dir, output.as_deref()),
            Command::GenerateDocs { dir } => cmd::generate_docs(Cli::command(), &dir),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
