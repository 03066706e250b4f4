//! `mirrorgate demo`: six local mirrors "around the world", mirrorgate in
//! front of them with the project's demo GeoIP database (embedded in the
//! binary), and `curl` commands that show different answers for clients in
//! different countries. Needs nothing but the binary.
//!
//! Everything a real site has is there, in a temporary directory removed on
//! exit: the origin tree (so redirects carry `Digest`, the Metalink has the
//! hash and `?sha256` answers), the GeoIP files, and the config file itself,
//! so that `explain --config` and `check-config` can be tried against it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::demo_mirror::{demo_tree, DemoMirror, Tree, TRACE_FILE};
use crate::app::{App, StartOptions};
use crate::config::Config;

/// The demo GeoIP databases, embedded: the demo and `locate` without a database need no file.
pub(super) const CITY: &[u8] = include_bytes!("../../geoip/demo-city.mmdb");
pub(super) const ASN: &[u8] = include_bytes!("../../geoip/demo-asn.mmdb");

/// The origin's files are dated this (2026-01-01), well before the mirrors'
/// trace files say they synced, so every mirror is fresh for every file.
const PUBLISHED: u64 = 1_767_225_600;

/// (name, country, continent, latitude, longitude, a client address in that country from the demo database)
const SITES: [(&str, &str, &str, f64, f64, &str); 6] = [
    ("de-fra", "DE", "EU", 50.11, 8.68, "192.0.2.1"),
    ("us-nyc", "US", "NA", 40.71, -74.01, "192.0.2.65"),
    ("br-sao", "BR", "SA", -23.55, -46.63, "192.0.2.97"),
    ("jp-tyo", "JP", "AS", 35.68, 139.69, "192.0.2.113"),
    ("au-syd", "AU", "OC", -33.87, 151.21, "192.0.2.161"),
    ("za-jnb", "ZA", "AF", -26.20, 28.05, "192.0.2.177"),
];

/// Builds the demo config for mirrors at these addresses, with the origin
/// tree and GeoIP files in `dir`.
pub fn demo_config(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    mirrors: &[SocketAddr],
    dir: &Path,
) -> String {
    let mut y = format!(
        "listen: {listen}\nadmin_listen: {admin_listen}\n\
         geoip:\n  city: {city}\n  asn: {asn}\n\
         trusted_proxies: [127.0.0.0/8, \"::1/128\"]\n\
         health:\n  interval: 2s\n  timeout: 1s\n  rise: 2\n  fall: 2\n  path: README.txt\n\
         admin:\n  token: demo-token-0123456789\n\
         origin:\n  root: {root}\n  trace_file: {TRACE_FILE}\n\
         mirrors:\n",
        city = yaml_str(&dir.join("demo-city.mmdb")),
        asn = yaml_str(&dir.join("demo-asn.mmdb")),
        root = yaml_str(&dir.join("origin")),
    );
    for ((name, cc, cont, lat, lon, _), addr) in SITES.iter().zip(mirrors) {
        let _ = write!(
            y,
            "  - name: {name}\n    url: http://{addr}/pub/\n    country: {cc}\n    continent: {cont}\n    latitude: {lat}\n    longitude: {lon}\n"
        );
    }
    y
}

/// A path as a YAML scalar (quoted: a temporary directory may hold anything).
fn yaml_str(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap_or_default()
}

/// The demo's directory; removed when the demo ends, however it ends.
struct DemoDir(PathBuf);

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the origin tree (files dated [`PUBLISHED`]) and the GeoIP files.
fn write_demo_dir(dir: &Path, tree: &Tree) -> anyhow::Result<()> {
    let published = SystemTime::UNIX_EPOCH + Duration::from_secs(PUBLISHED);
    for (rel, body) in tree.iter() {
        let path = dir.join("origin").join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, body)?;
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(published)?;
    }
    std::fs::write(dir.join("demo-city.mmdb"), CITY)?;
    std::fs::write(dir.join("demo-asn.mmdb"), ASN)?;
    Ok(())
}

/// `mirrorgate demo`
pub async fn demo(listen: SocketAddr, admin_listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let dir = DemoDir(std::env::temp_dir().join(format!("mirrorgate-demo-{}", std::process::id())));
    // The mirrors synced now: their trace files say so.
    let synced = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(PUBLISHED, |d| d.as_secs());
    let tree = demo_tree(synced);
    write_demo_dir(&dir.0, &tree).with_context(|| format!("writing {}", dir.0.display()))?;
    let mut mirrors = Vec::new();
    for _ in SITES {
        mirrors.push(DemoMirror::start(tree.clone()).await?);
    }
    let addrs: Vec<SocketAddr> = mirrors.iter().map(|m| m.addr).collect();
    let yaml = demo_config(listen, admin_listen, &addrs, &dir.0);
    let config_path = dir.0.join("mirrorgate.yaml");
    std::fs::write(&config_path, &yaml)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let app = App::start(
        config,
        StartOptions {
            config_path: Some(config_path.clone()),
            geo: None,
        },
    )
    .await?;
    let (public, admin) = (app.public_addr(), app.admin_addr());
    // Ready, and every file hashed: the first answers already carry the hashes.
    let mut watch = app.state().watch();
    let _ = watch
        .wait_for(|_| {
            let s = app.state().load();
            s.ready && !s.content.is_empty() && s.content.hashed() == s.content.len()
        })
        .await;
    let exe = std::env::current_exe()
        .map_or_else(|_| "mirrorgate".to_string(), |p| p.display().to_string());

    println!(
        "mirrorgate demo: {} mirrors, public http://{public}/, admin http://{admin}/\n",
        SITES.len()
    );
    for ((name, cc, ..), m) in SITES.iter().zip(&mirrors) {
        println!("  mirror {name:<7} ({cc}) http://{}/pub/", m.addr);
    }
    println!("\nThe same file, asked for by clients in different countries:\n");
    for (_, cc, _, _, _, ip) in SITES {
        println!("  curl -sI -H 'X-Forwarded-For: {ip}' http://{public}/releases/1.0/demo-1.0.iso | grep -i '^location'   # {cc}");
    }
    println!("\nA client the database does not know (spread over all mirrors by weight):\n");
    println!("  curl -sI -H 'X-Forwarded-For: 10.1.2.3' http://{public}/releases/1.0/demo-1.0.iso | grep -i '^location'");
    println!("\nWhy that mirror? The ranking and the reason for every mirror:\n");
    println!(
        "  curl -s 'http://{admin}/api/v1/explain?ip=192.0.2.1&path=/releases/1.0/demo-1.0.iso'"
    );
    println!("\nThe same from the command line, with the demo's config file:\n");
    println!(
        "  {exe} explain --config {} --ip 192.0.2.1 /releases/1.0/demo-1.0.iso",
        config_path.display()
    );
    println!("\nThe file's SHA-256 (from the origin tree), as a redirect's Digest header and as a Metalink carry it:\n");
    println!("  curl -sI -H 'X-Forwarded-For: 192.0.2.1' http://{public}/releases/1.0/demo-1.0.iso | grep -i digest");
    println!("  curl -s 'http://{public}/releases/1.0/demo-1.0.iso?sha256'");
    println!("  curl -s -H 'X-Forwarded-For: 192.0.2.1' 'http://{public}/releases/1.0/demo-1.0.iso?meta4'");
    println!("\nSwitch the German mirror off, and watch German clients move (after 2 failed probes, ~4s):\n");
    println!("  curl -s -X POST http://{}/_demo/down", mirrors[0].addr);
    println!("  curl -s http://{admin}/api/v1/mirrors/de-fra");
    println!("  curl -s -X POST http://{}/_demo/up", mirrors[0].addr);
    println!(
        "\nMetrics: curl -s http://{admin}/metrics | grep ^mirrorgate_\n\nCtrl-C stops the demo."
    );
    app.run_until_signal().await?;
    drop(dir);
    Ok(ExitCode::SUCCESS)
}
