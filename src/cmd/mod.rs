//! The subcommands behind the thin `main`: each loads what it needs, does one
//! thing, and returns an exit code. Tool code: `anyhow` is fine here.

mod demo;
mod demo_mirror;
mod docs;
mod manifest;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::app::{load_parts, App, StartOptions};
use crate::config::Config;
use crate::content::{Checker, CheckerSettings, ContentIndex};
use crate::geo::GeoDb;
use crate::health::{probe, HealthState, MirrorHealth, ProbeClient, ProbeTarget};
use crate::metrics::Metrics;
use crate::registry;
use crate::select::Scheme;
use crate::state::{MirrorEntry, Snapshot};

pub use demo::demo;
pub use docs::generate_docs;
pub use manifest::manifest_command;

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn load_config(path: &Path) -> anyhow::Result<Result<Config, ExitCode>> {
    match Config::load(path) {
        Ok(c) => Ok(Ok(c)),
        Err(errors) => {
            eprintln!("{}: {} error(s):", path.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

/// `serve --config PATH`
pub async fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(path)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let app = App::start(
        config,
        StartOptions {
            config_path: Some(path.to_path_buf()),
            geo: None,
        },
    )
    .await?;
    app.run_until_signal().await.context("signal handling")?;
    Ok(ExitCode::SUCCESS)
}

/// `check-config --config PATH`: every error with its place; notes on where
/// mirror locations come from.
pub async fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(path)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let geo = if config.geoip.city.is_empty() {
        GeoDb::empty()
    } else {
        match GeoDb::open(&config.geoip.city, config.geoip.asn.as_ref()) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{}: 1 error(s):\n  geoip: {e}", path.display());
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    let (mirrors, notes) = registry::build_mirrors(&config, &geo).await;
    for n in &notes {
        println!("note: {n}");
    }
    println!(
        "{}: OK ({} mirror(s), {} enabled; fallback {})",
        path.display(),
        mirrors.len(),
        mirrors.iter().filter(|m| m.enabled).count(),
        config
            .fallback
            .as_ref()
            .map_or("none: 503 when no mirror fits".into(), |u| u.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

/// `locate [--config PATH | --city DB [--asn DB]] IP`; with neither, the
/// demo databases embedded in the binary (said in the output: they are not
/// real GeoIP data).
pub fn locate(
    config: Option<&Path>,
    city: &[PathBuf],
    asn: Option<&PathBuf>,
    ip: IpAddr,
) -> anyhow::Result<ExitCode> {
    let (city, asn) = match config {
        Some(path) => {
            let c = match load_config(path)? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            (c.geoip.city, c.geoip.asn)
        }
        None => (city.to_vec(), asn.cloned()),
    };
    let geo = if city.is_empty() && asn.is_none() {
        GeoDb::from_bytes(
            vec![(
                "demo-city.mmdb (embedded demo data, not real GeoIP: give --config or --city for yours)"
                    .into(),
                demo::CITY.to_vec(),
            )],
            Some((
                "demo-asn.mmdb (embedded demo data)".into(),
                demo::ASN.to_vec(),
            )),
        )?
    } else {
        GeoDb::open(&city, asn.as_ref())?
    };
    let (loc, outcome) = geo.lookup(ip);
    println!("address:   {ip}");
    for db in geo.describe() {
        println!("database:  {db}");
    }
    println!("result:    {}", outcome.as_str());
    if let Some(l) = loc {
        let s = |o: Option<String>| o.unwrap_or_else(|| "-".into());
        println!("country:   {}", s(l.country.map(|c| c.to_string())));
        println!("continent: {}", s(l.continent.map(|c| c.to_string())));
        println!(
            "location:  {}",
            s(l.coords.map(|c| format!("{:.4}, {:.4}", c.lat, c.lon)))
        );
        println!("asn:       {}", s(l.asn.map(|a| a.to_string())));
    }
    Ok(ExitCode::SUCCESS)
}

/// The origin's index for `explain`: a walk of the tree (no hashing) or the
/// manifest file. A manifest URL is not fetched by this tool: `None`, and the
/// explanation is then made without per-file reasons (it says so).
fn origin_index(config: &Config) -> anyhow::Result<Option<Arc<ContentIndex>>> {
    use crate::config::OriginSource as S;
    let Some(source) = config.origin.as_ref().and_then(|o| o.source.as_ref()) else {
        return Ok(None);
    };
    Ok(match source {
        S::Root(root) => {
            let walk = crate::content::walk(root)?;
            let (index, _) = crate::content::indexer::build_from_walk(walk, &ContentIndex::empty());
            Some(Arc::new(index))
        }
        S::ManifestFile(p) => {
            let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
            let index = crate::content::parse_manifest(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Some(Arc::new(index))
        }
        S::ManifestUrl(u) => {
            eprintln!("note: the manifest at {u} is not fetched by explain; no per-file reasons");
            None
        }
    })
}

/// `explain --config PATH --ip IP PATH`: probes every enabled mirror once
/// (unless `--assume-up`), then decides exactly as the server would, on-demand
/// checks of a file newer than a mirror's last sync included.
pub async fn explain(
    path: &Path,
    ip: IpAddr,
    https: bool,
    assume_up: bool,
    req_path: &str,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(path)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let timeout = config.health.timeout;
    let roots = config.tls_roots.clone();
    let checker = explain_checker(&config)?;
    let content = origin_index(&config)?;
    let trace_file = config.origin.as_ref().and_then(|o| o.trace_file.clone());
    let loaded = load_parts(config, None).await.map_err(anyhow::Error::msg)?;
    let metrics = Metrics::new();
    let client = ProbeClient::with_roots(timeout, &roots)?;
    let now = std::time::SystemTime::now();
    let mut entries = Vec::with_capacity(loaded.mirrors.len());
    let mut loaded = loaded;
    for m in std::mem::take(&mut loaded.mirrors) {
        let mut health = MirrorHealth::new(now);
        if m.enabled {
            let target = ProbeTarget {
                mirror: m.name.clone(),
                url: m.probe_url.clone(),
                base: m.url.clone(),
                trace_url: trace_file
                    .as_deref()
                    .and_then(|p| crate::health::trace_url(&m.url, p).ok()),
            };
            // The trace file is read even with --assume-up: freshness is per file.
            if let Some(trace) = crate::health::fetch_trace(&client, &target).await {
                if let Err(e) = &trace {
                    eprintln!("trace {}: {e}", m.name);
                }
                health.observe_trace(trace);
            }
            let result = if assume_up {
                Ok(std::time::Duration::ZERO)
            } else {
                probe(&client, &target).await
            };
            // One probe decides here: explain shows the present, not a history.
            health.observe(result, 1, 1, std::time::SystemTime::now());
        }
        if health.state != HealthState::Up && !assume_up {
            if let Some(r) = &health.last_failure {
                eprintln!("probe {}: {r}", m.name);
            }
        }
        let counters = metrics.mirror_counters(&m.name);
        entries.push(MirrorEntry::new(Arc::new(m), health, counters));
    }
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    let snap = Snapshot::standalone(&loaded, entries, content);
    // The checks a download would make, so that explain says what the
    // server does for a file no mirror is yet known to have.
    let opts = crate::explain::Options::default();
    let report =
        crate::explain::explain_checked(&snap, &checker, &metrics, ip, req_path, scheme, opts)
            .await
            .map_err(anyhow::Error::msg)?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// The on-demand checker `serve` would build from this config.
fn explain_checker(config: &Config) -> anyhow::Result<Checker> {
    let mut settings = CheckerSettings::default();
    if let Some(od) = config.origin.as_ref().map(|o| &o.on_demand) {
        settings.timeout = od.timeout;
        settings.positive_ttl = od.positive_ttl;
        settings.negative_ttl = od.negative_ttl;
    }
    settings.roots = config.tls_roots.clone();
    Checker::new(settings).context("on-demand checks")
}
