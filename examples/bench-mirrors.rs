//! The mirrors of the load benchmarks (`benches/load.sh`, `benches/scale.sh`):
//! healthy local mirrors "around the world" (50 by default, up to 200), and
//! the mirrorgate configs that point at them.
//!
//! It binds one loopback port per mirror, each answering `200 OK` to every
//! request (the benchmark only needs them to pass health probes: clients are
//! redirected to them, never sent), and writes a mirrorgate config that
//! places each mirror at a real city (coordinates, country, continent), so
//! that selection does the work it does in production: one distance per
//! mirror and request, same-country preference, a weighted spread among
//! close mirrors.
//!
//! Every mirror also serves the origin's trace file, [`TRACE_PATH`] under its
//! base URL, holding the time this process started (Unix seconds): with
//! `origin.trace_file: project/trace/origin`, each mirror has synced after
//! every file of a manifest whose times are in the past, so mirrorgate finds
//! every mirror fresh for every file and never checks one on demand.
//!
//! Usage: `bench-mirrors CONFIG_OUT CITY_DB [COUNT [MORE_CONFIG_OUT...]]`.
//! CITY_DB is the GeoLite2 City database the config's `geoip.city` names;
//! COUNT (default 50, at most 200) the number of mirrors. Each further
//! config names the same mirrors, for another mirrorgate next to the first.
//! Each config gets two free ports on 127.0.0.1 for mirrorgate's listeners.
//! The configs are written (atomically, CONFIG_OUT last) once every mirror
//! is listening, then the process serves until killed.

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
const CITIES: [(&str, &str, &str, f64, f64); 200] = [
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
    // The first 50 are the load benchmark's default; the rest join for
    // `benches/scale.sh` (200 mirrors).
    ("berlin", "DE", "EU", 52.52, 13.40),
    ("munich", "DE", "EU", 48.14, 11.58),
    ("hamburg", "DE", "EU", 53.55, 9.99),
    ("nuremberg", "DE", "EU", 49.45, 11.08),
    ("lyon", "FR", "EU", 45.76, 4.84),
    ("marseille", "FR", "EU", 43.30, 5.37),
    ("strasbourg", "FR", "EU", 48.57, 7.75),
    ("manchester", "GB", "EU", 53.48, -2.24),
    ("edinburgh", "GB", "EU", 55.95, -3.19),
    ("rotterdam", "NL", "EU", 51.92, 4.48),
    ("brussels", "BE", "EU", 50.85, 4.35),
    ("luxembourg", "LU", "EU", 49.61, 6.13),
    ("copenhagen", "DK", "EU", 55.68, 12.57),
    ("oslo", "NO", "EU", 59.91, 10.75),
    ("gothenburg", "SE", "EU", 57.71, 11.97),
    ("tallinn", "EE", "EU", 59.44, 24.75),
    ("riga", "LV", "EU", 56.95, 24.11),
    ("vilnius", "LT", "EU", 54.69, 25.28),
    ("prague", "CZ", "EU", 50.08, 14.44),
    ("bratislava", "SK", "EU", 48.15, 17.11),
    ("budapest", "HU", "EU", 47.50, 19.04),
    ("ljubljana", "SI", "EU", 46.06, 14.51),
    ("zagreb", "HR", "EU", 45.81, 15.98),
    ("belgrade", "RS", "EU", 44.79, 20.45),
    ("sofia", "BG", "EU", 42.70, 23.32),
    ("barcelona", "ES", "EU", 41.39, 2.17),
    ("valencia", "ES", "EU", 39.47, -0.38),
    ("porto", "PT", "EU", 41.15, -8.61),
    ("rome", "IT", "EU", 41.90, 12.50),
    ("turin", "IT", "EU", 45.07, 7.69),
    ("geneva", "CH", "EU", 46.20, 6.14),
    ("krakow", "PL", "EU", 50.06, 19.94),
    ("minsk", "BY", "EU", 53.90, 27.57),
    ("saint-petersburg", "RU", "EU", 59.93, 30.36),
    ("novosibirsk", "RU", "EU", 55.01, 82.93),
    ("vladivostok", "RU", "EU", 43.12, 131.89),
    ("reykjavik", "IS", "EU", 64.15, -21.94),
    ("boston", "US", "NA", 42.36, -71.06),
    ("atlanta", "US", "NA", 33.75, -84.39),
    ("denver", "US", "NA", 39.74, -104.99),
    ("phoenix", "US", "NA", 33.45, -112.07),
    ("san-jose", "US", "NA", 37.34, -121.89),
    ("san-francisco", "US", "NA", 37.77, -122.42),
    ("portland", "US", "NA", 45.52, -122.68),
    ("salt-lake-city", "US", "NA", 40.76, -111.89),
    ("minneapolis", "US", "NA", 44.98, -93.27),
    ("houston", "US", "NA", 29.76, -95.37),
    ("austin", "US", "NA", 30.27, -97.74),
    ("pittsburgh", "US", "NA", 40.44, -80.00),
    ("philadelphia", "US", "NA", 39.95, -75.17),
    ("raleigh", "US", "NA", 35.78, -78.64),
    ("detroit", "US", "NA", 42.33, -83.05),
    ("las-vegas", "US", "NA", 36.17, -115.14),
    ("honolulu", "US", "NA", 21.31, -157.86),
    ("anchorage", "US", "NA", 61.22, -149.90),
    ("montreal", "CA", "NA", 45.50, -73.57),
    ("calgary", "CA", "NA", 51.05, -114.07),
    ("ottawa", "CA", "NA", 45.42, -75.70),
    ("halifax", "CA", "NA", 44.65, -63.57),
    ("guadalajara", "MX", "NA", 20.66, -103.35),
    ("monterrey", "MX", "NA", 25.69, -100.32),
    ("san-jose-cr", "CR", "NA", 9.93, -84.08),
    ("guatemala-city", "GT", "NA", 14.63, -90.51),
    ("santo-domingo", "DO", "NA", 18.49, -69.93),
    ("san-juan", "PR", "NA", 18.47, -66.11),
    ("kingston", "JM", "NA", 17.97, -76.79),
    ("rio-de-janeiro", "BR", "SA", -22.91, -43.17),
    ("porto-alegre", "BR", "SA", -30.03, -51.23),
    ("fortaleza", "BR", "SA", -3.73, -38.53),
    ("brasilia", "BR", "SA", -15.79, -47.88),
    ("curitiba", "BR", "SA", -25.43, -49.27),
    ("cordoba", "AR", "SA", -31.42, -64.18),
    ("montevideo", "UY", "SA", -34.90, -56.16),
    ("asuncion", "PY", "SA", -25.26, -57.58),
    ("la-paz", "BO", "SA", -16.50, -68.15),
    ("quito", "EC", "SA", -0.18, -78.47),
    ("caracas", "VE", "SA", 10.48, -66.90),
    ("medellin", "CO", "SA", 6.24, -75.58),
    ("istanbul", "TR", "AS", 41.01, 28.98),
    ("osaka", "JP", "AS", 34.69, 135.50),
    ("sapporo", "JP", "AS", 43.06, 141.35),
    ("fukuoka", "JP", "AS", 33.59, 130.40),
    ("busan", "KR", "AS", 35.18, 129.08),
    ("shanghai", "CN", "AS", 31.23, 121.47),
    ("guangzhou", "CN", "AS", 23.13, 113.26),
    ("shenzhen", "CN", "AS", 22.54, 114.06),
    ("chengdu", "CN", "AS", 30.57, 104.07),
    ("hangzhou", "CN", "AS", 30.27, 120.16),
    ("wuhan", "CN", "AS", 30.59, 114.31),
    ("xian", "CN", "AS", 34.34, 108.94),
    ("harbin", "CN", "AS", 45.80, 126.53),
    ("delhi", "IN", "AS", 28.70, 77.10),
    ("bangalore", "IN", "AS", 12.97, 77.59),
    ("chennai", "IN", "AS", 13.08, 80.27),
    ("kolkata", "IN", "AS", 22.57, 88.36),
    ("karachi", "PK", "AS", 24.86, 67.01),
    ("lahore", "PK", "AS", 31.55, 74.34),
    ("dhaka", "BD", "AS", 23.81, 90.41),
    ("colombo", "LK", "AS", 6.93, 79.86),
    ("kathmandu", "NP", "AS", 27.72, 85.32),
    ("kuala-lumpur", "MY", "AS", 3.139, 101.687),
    ("manila", "PH", "AS", 14.60, 120.98),
    ("hanoi", "VN", "AS", 21.03, 105.85),
    ("ho-chi-minh-city", "VN", "AS", 10.82, 106.63),
    ("phnom-penh", "KH", "AS", 11.56, 104.93),
    ("ulaanbaatar", "MN", "AS", 47.89, 106.91),
    ("almaty", "KZ", "AS", 43.24, 76.89),
    ("tashkent", "UZ", "AS", 41.30, 69.24),
    ("tehran", "IR", "AS", 35.69, 51.39),
    ("riyadh", "SA", "AS", 24.71, 46.68),
    ("doha", "QA", "AS", 25.29, 51.53),
    ("kuwait-city", "KW", "AS", 29.38, 47.99),
    ("muscat", "OM", "AS", 23.59, 58.41),
    ("amman", "JO", "AS", 31.95, 35.93),
    ("beirut", "LB", "AS", 33.89, 35.50),
    ("baku", "AZ", "AS", 40.41, 49.87),
    ("tbilisi", "GE", "AS", 41.72, 44.79),
    ("yerevan", "AM", "AS", 40.18, 44.51),
    ("macau", "MO", "AS", 22.20, 113.54),
    ("melbourne", "AU", "OC", -37.81, 144.96),
    ("brisbane", "AU", "OC", -27.47, 153.03),
    ("perth", "AU", "OC", -31.95, 115.86),
    ("adelaide", "AU", "OC", -34.93, 138.60),
    ("canberra", "AU", "OC", -35.28, 149.13),
    ("wellington", "NZ", "OC", -41.29, 174.78),
    ("christchurch", "NZ", "OC", -43.53, 172.64),
    ("suva", "FJ", "OC", -18.14, 178.44),
    ("noumea", "NC", "OC", -22.27, 166.46),
    ("port-moresby", "PG", "OC", -9.44, 147.18),
    ("cape-town", "ZA", "AF", -33.92, 18.42),
    ("durban", "ZA", "AF", -29.86, 31.02),
    ("casablanca", "MA", "AF", 33.57, -7.59),
    ("algiers", "DZ", "AF", 36.75, 3.06),
    ("tunis", "TN", "AF", 36.81, 10.18),
    ("accra", "GH", "AF", 5.60, -0.19),
    ("dakar", "SN", "AF", 14.72, -17.47),
    ("abidjan", "CI", "AF", 5.36, -4.01),
    ("addis-ababa", "ET", "AF", 9.03, 38.74),
    ("kampala", "UG", "AF", 0.35, 32.58),
    ("dar-es-salaam", "TZ", "AF", -6.79, 39.21),
    ("kigali", "RW", "AF", -1.94, 30.06),
    ("luanda", "AO", "AF", -8.84, 13.23),
    ("kinshasa", "CD", "AF", -4.44, 15.27),
    ("lusaka", "ZM", "AF", -15.39, 28.32),
    ("harare", "ZW", "AF", -17.83, 31.05),
    ("maputo", "MZ", "AF", -25.97, 32.57),
    ("antananarivo", "MG", "AF", -18.88, 47.51),
    ("port-louis", "MU", "AF", -20.16, 57.50),
    ("khartoum", "SD", "AF", 15.50, 32.56),
    ("windhoek", "NA", "AF", -22.56, 17.08),
];

/// Declared capacities, cycled over the mirrors so that the weighted spread
/// has unequal weights to work with.
const WEIGHTS: [u32; 4] = [100, 200, 50, 100];

/// Where each mirror serves the trace file, under its base URL `/pub/`.
const TRACE_PATH: &str = "/pub/project/trace/origin";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    const USAGE: &str = "usage: bench-mirrors CONFIG_OUT CITY_DB [COUNT [MORE_CONFIG_OUT...]]";
    let mut args = std::env::args_os().skip(1);
    let (Some(config_out), Some(city_db)) = (args.next(), args.next()) else {
        anyhow::bail!(USAGE);
    };
    let (config_out, city_db) = (PathBuf::from(config_out), PathBuf::from(city_db));
    let count = match args.next() {
        Some(n) => n
            .to_str()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=CITIES.len()).contains(n))
            .with_context(|| format!("COUNT must be 1..={}; {USAGE}", CITIES.len()))?,
        None => 50,
    };
    let more: Vec<PathBuf> = args.map(PathBuf::from).collect();

    let trace: Bytes = {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        Bytes::from(format!("{}\n", now.as_secs()))
    };
    let mut mirrors = Vec::with_capacity(count);
    for _ in 0..count {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        mirrors.push(listener.local_addr()?);
        tokio::spawn(serve(listener, trace.clone()));
    }
    // The extra configs first: CONFIG_OUT appearing means all are there.
    for path in more.iter().chain(std::iter::once(&config_out)) {
        // mirrorgate binds these itself: take two free ports and let them go.
        let (listen, admin) = {
            let a = std::net::TcpListener::bind("127.0.0.1:0")?;
            let b = std::net::TcpListener::bind("127.0.0.1:0")?;
            (a.local_addr()?, b.local_addr()?)
        };
        write_atomically(path, &config(listen, admin, &city_db, &mirrors))?;
    }
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

/// Answers `200 OK` to everything on one listener: the trace file at
/// [`TRACE_PATH`], `ok` elsewhere.
async fn serve(listener: TcpListener, trace: Bytes) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let trace = trace.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let body = if req.uri().path() == TRACE_PATH {
                trace.clone()
            } else {
                Bytes::from_static(b"ok\n")
            };
            std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(body))))
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
    }
}

/// The mirrorgate config: the real city database, loopback as the trusted
/// proxy (wrk sets X-Forwarded-For), and a health interval long enough that
/// probes are no part of what is measured.
fn config(listen: SocketAddr, admin: SocketAddr, city_db: &Path, mirrors: &[SocketAddr]) -> String {
    let mut y = format!(
        "# Written by examples/bench-mirrors.rs for the load benchmarks.\n\
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
