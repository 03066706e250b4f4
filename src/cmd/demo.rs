//! `mirrorgate demo`: six local mirrors "around the world", mirrorgate in
//! front of them with the project's demo GeoIP database (embedded in the
//! binary), and `curl` commands that show different answers for clients in
//! different countries. Needs nothing but the binary.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::demo_mirror::{demo_tree, DemoMirror};
use crate::app::{App, StartOptions};
use crate::config::Config;
use crate::geo::GeoDb;

const CITY: &[u8] = include_bytes!("../../geoip/demo-city.mmdb");
const ASN: &[u8] = include_bytes!("../../geoip/demo-asn.mmdb");

/// (name, country, continent, latitude, longitude, a client address in that country from the demo database)
const SITES: [(&str, &str, &str, f64, f64, &str); 6] = [
    ("de-fra", "DE", "EU", 50.11, 8.68, "192.0.2.1"),
    ("us-nyc", "US", "NA", 40.71, -74.01, "192.0.2.65"),
    ("br-sao", "BR", "SA", -23.55, -46.63, "192.0.2.97"),
    ("jp-tyo", "JP", "AS", 35.68, 139.69, "192.0.2.113"),
    ("au-syd", "AU", "OC", -33.87, 151.21, "192.0.2.161"),
    ("za-jnb", "ZA", "AF", -26.20, 28.05, "192.0.2.177"),
];

/// Builds the demo config for mirrors at these addresses.
pub fn demo_config(listen: SocketAddr, admin_listen: SocketAddr, mirrors: &[SocketAddr]) -> String {
    let mut y = format!(
        "listen: {listen}\nadmin_listen: {admin_listen}\n\
         trusted_proxies: [127.0.0.0/8, \"::1/128\"]\n\
         health:\n  interval: 2s\n  timeout: 1s\n  rise: 2\n  fall: 2\n  path: README.txt\n\
         admin:\n  token: demo-token-0123456789\n\
         mirrors:\n"
    );
    for ((name, cc, cont, lat, lon, _), addr) in SITES.iter().zip(mirrors) {
        let _ = write!(
            y,
            "  - name: {name}\n    url: http://{addr}/pub/\n    country: {cc}\n    continent: {cont}\n    latitude: {lat}\n    longitude: {lon}\n"
        );
    }
    y
}

/// `mirrorgate demo`
pub async fn demo(listen: SocketAddr, admin_listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let geo = GeoDb::from_bytes(
        vec![("demo-city.mmdb (embedded)".into(), CITY.to_vec())],
        Some(("demo-asn.mmdb (embedded)".into(), ASN.to_vec())),
    )?;
    let tree = demo_tree();
    let mut mirrors = Vec::new();
    for _ in SITES {
        mirrors.push(DemoMirror::start(tree.clone()).await?);
    }
    let addrs: Vec<SocketAddr> = mirrors.iter().map(|m| m.addr).collect();
    let yaml = demo_config(listen, admin_listen, &addrs);
    let config = Config::from_yaml(&yaml, Path::new("."))
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let app = App::start(
        config,
        StartOptions {
            config_path: None,
            geo: Some(Arc::new(geo)),
        },
    )
    .await?;
    let (public, admin) = (app.public_addr(), app.admin_addr());
    let mut watch = app.state().watch();
    let _ = watch.wait_for(|_| app.state().load().ready).await;

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
    println!("\nSwitch the German mirror off, and watch German clients move (after 2 failed probes, ~4s):\n");
    println!("  curl -s -X POST http://{}/_demo/down", mirrors[0].addr);
    println!("  curl -s http://{admin}/api/v1/mirrors/de-fra");
    println!("  curl -s -X POST http://{}/_demo/up", mirrors[0].addr);
    println!(
        "\nMetrics: curl -s http://{admin}/metrics | grep ^mirrorgate_\n\nCtrl-C stops the demo."
    );
    app.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}
