//! The mirrors of the load benchmark (`benches/load.sh`): 50 healthy local
//! mirrors "around the world", and the mirrorgate config that points at them.
//!
//! It binds one loopback port per mirror, each answering `200 OK` to every
//! request (the benchmark only needs them to pass health probes: clients are
//! redirected to them, never sent), and writes a mirrorgate config that
//! places each mirror at a real city (coordinates, country, continent), so
//! that selection does the work it does in production: 50 distances per
//! request, same-country preference, a weighted spread among close mirrors.
//!
//! Usage: `bench-mirrors CONFIG_OUT CITY_DB`. CITY_DB is the GeoLite2 City
//! database the config's `geoip.city` names. mirrorgate's two listen ports
//! are picked free on 127.0.0.1. The config is written (atomically) once
//! every mirror is listening, then the process serves until killed.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// (city, country, continent, latitude, longitude): where the mirrors stand.
const CITIES: [(&str, &str, &str, f64, f64); 50] = [
    ("frankfurt", "DE", "EU", 50.11, 8.68),
    ("paris", "FR", "EU", 48.86, 2.35),
    ("london", "GB", "EU", 51.51, -0.13),
    ("amsterdam", "NL", "EU", 52.37, 4.90),
    ("stockholm", "SE", "EU", 59.33, 18.07),
    ("madrid", "ES", "EU", 40.42, -3.70),
    ("milan", "IT", "EU", 45.46, 9.19),
    ("warsaw", "PL", "EU", 52.23, 21.01),
    ("vienna", "AT", "EU", 48.21, 16.37),
    ("helsinki", "FI", "EU", 60.17, 24.94),
    ("dublin", "IE", "EU", 53.35, -6.26),
    ("athens", "GR", "EU", 37.98, 23.73),
    ("bucharest", "RO", "EU", 44.43, 26.10),
    ("kyiv", "UA", "EU", 50.45, 30.52),
    ("moscow", "RU", "EU", 55.76, 37.62),
    ("zurich", "CH", "EU", 47.37, 8.54),
    ("lisbon", "PT", "EU", 38.72, -9.14),
    ("new-york", "US", "NA", 40.71, -74.01),
    ("ashburn", "US", "NA", 39.04, -77.49),
    ("chicago", "US", "NA", 41.88, -87.63),
    ("dallas", "US", "NA", 32.78, -96.80),
    ("los-angeles", "US", "NA", 34.05, -118.24),
    ("seattle", "US", "NA", 47.61, -122.33),
    ("miami", "US", "NA", 25.76, -80.19),
    ("toronto", "CA", "NA", 43.65, -79.38),
    ("vancouver", "CA", "NA", 49.28, -123.12),
    ("mexico-city", "MX", "NA", 19.43, -99.13),
    ("panama", "PA", "NA", 8.98, -79.52),
    ("sao-paulo", "BR", "SA", -23.55, -46.63),
    ("buenos-aires", "AR", "SA", -34.60, -58.38),
    ("santiago", "CL", "SA", -33.45, -70.67),
    ("bogota", "CO", "SA", 4.71, -74.07),
    ("lima", "PE", "SA", -12.05, -77.04),
    ("tokyo", "JP", "AS", 35.68, 139.69),
    ("seoul", "KR", "AS", 37.57, 126.98),
    ("singapore", "SG", "AS", 1.35, 103.82),
    ("hong-kong", "HK", "AS", 22.32, 114.17),
    ("taipei", "TW", "AS", 25.03, 121.57),
    ("beijing", "CN", "AS", 39.90, 116.40),
    ("mumbai", "IN", "AS", 19.08, 72.88),
    ("bangkok", "TH", "AS", 13.76, 100.50),
    ("jakarta", "ID", "AS", -6.21, 106.85),
    ("dubai", "AE", "AS", 25.20, 55.27),
    ("tel-aviv", "IL", "AS", 32.09, 34.78),
    ("sydney", "AU", "OC", -33.87, 151.21),
    ("auckland", "NZ", "OC", -36.85, 174.76),
    ("johannesburg", "ZA", "AF", -26.20, 28.05),
    ("nairobi", "KE", "AF", -1.29, 36.82),
    ("lagos", "NG", "AF", 6.52, 3.38),
    ("cairo", "EG", "AF", 30.04, 31.24),
];

/// Declared capacities, cycled over the mirrors so that the weighted spread
/// has unequal weights to work with.
const WEIGHTS: [u32; 4] = [100, 200, 50, 100];

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(config_out), Some(city_db), None) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: bench-mirrors CONFIG_OUT CITY_DB");
    };
    let (config_out, city_db) = (PathBuf::from(config_out), PathBuf::from(city_db));

    let mut mirrors = Vec::with_capacity(CITIES.len());
    for _ in CITIES {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        mirrors.push(listener.local_addr()?);
        tokio::spawn(serve(listener));
    }
    // mirrorgate binds these itself: take two free ports and let them go.
    let (listen, admin) = {
        let a = std::net::TcpListener::bind("127.0.0.1:0")?;
        let b = std::net::TcpListener::bind("127.0.0.1:0")?;
        (a.local_addr()?, b.local_addr()?)
    };
    write_atomically(&config_out, &config(listen, admin, &city_db, &mirrors))?;
    println!(
        "{} mirrors on 127.0.0.1 ports {}..{}; config {}",
        mirrors.len(),
        mirrors.iter().map(SocketAddr::port).min().unwrap_or(0),
        mirrors.iter().map(SocketAddr::port).max().unwrap_or(0),
        config_out.display()
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// Answers `200 OK` to everything on one listener.
async fn serve(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let svc = service_fn(|_req| {
            std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
                Bytes::from_static(b"ok\n"),
            ))))
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
    }
}

/// The mirrorgate config: the real city database, loopback as the trusted
/// proxy (wrk sets X-Forwarded-For), and a health interval long enough that
/// probes are no part of what is measured.
fn config(listen: SocketAddr, admin: SocketAddr, city_db: &Path, mirrors: &[SocketAddr]) -> String {
    let mut y = format!(
        "# Written by examples/bench-mirrors.rs for benches/load.sh.\n\
         listen: {listen}\n\
         admin_listen: {admin}\n\
         geoip:\n  city: {city}\n\
         trusted_proxies: [127.0.0.0/8]\n\
         health:\n  interval: 60s\n  timeout: 2s\n  rise: 2\n  fall: 2\n  path: /\n\
         mirrors:\n",
        city = serde_json::to_string(&city_db.to_string_lossy())
            .unwrap_or_else(|_| city_db.display().to_string()),
    );
    for (i, ((city, cc, continent, lat, lon), addr)) in CITIES.iter().zip(mirrors).enumerate() {
        let weight = WEIGHTS[i % WEIGHTS.len()];
        let _ = write!(
            y,
            "  - name: {city}\n    url: http://{addr}/pub/\n    country: {cc}\n    continent: {continent}\n    \
             latitude: {lat}\n    longitude: {lon}\n    weight: {weight}\n"
        );
    }
    y
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
