//! The hot functions of the request path, one by one: client address, path
//! normalisation, GeoIP lookup of a client, and selection over 50 mirrors
//! (and the full ranking of a list over 500 and 5,000).
//! Run with `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use mirrorgate::config::{MirrorConfig, SelectionConfig};
use mirrorgate::geo::{Coords, GeoDb};
use mirrorgate::health::{HealthState, MirrorHealth};
use mirrorgate::http::client_ip::{client_addr, ForwardedHeader, TrustedProxies};
use mirrorgate::http::path::CleanPath;
use mirrorgate::metrics::Metrics;
use mirrorgate::rankcache::RankCache;
use mirrorgate::registry::Mirror;
use mirrorgate::select::{select, Client, Reason, Scheme};
use mirrorgate::state::MirrorEntry;

/// 50 mirrors on a grid over the inhabited latitudes, up, as the snapshot holds them.
fn mirrors() -> Vec<MirrorEntry> {
    mirrors_n(50)
}

/// `n` mirrors placed as [`mirrors`] places them.
fn mirrors_n(n: usize) -> Vec<MirrorEntry> {
    let metrics = Metrics::new();
    (0..n)
        .map(|i| {
            let mc = MirrorConfig {
                name: format!("m{i}"),
                url: format!("https://m{i}.example.org/pub/").parse().unwrap(),
                country: Some(["DE", "US", "JP", "BR", "AU"][i % 5].parse().unwrap()),
                continent: None,
                coords: Some(Coords {
                    lat: -40.0 + (i as f64 * 7.3) % 100.0,
                    lon: -170.0 + (i as f64 * 37.0) % 340.0,
                }),
                asn: vec![64496 + i as u32],
                weight: 100,
                enabled: true,
                probe_path: None,
                countries_only: vec![],
                exclude_countries: vec![],
                continents_only: vec![],
            };
            let mirror = Mirror::from_config(&mc, "").unwrap();
            let mut health = MirrorHealth::new(SystemTime::now());
            health.observe(Ok(Duration::from_millis(5)), 1, 1, SystemTime::now());
            assert_eq!(health.state, HealthState::Up);
            let counters = metrics.mirror_counters(&mirror.name);
            MirrorEntry::new(Arc::new(mirror), health, counters)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let nets: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let trusted = TrustedProxies::new(&nets);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("203.0.113.9, 127.0.0.1"),
    );
    headers.insert("user-agent", HeaderValue::from_static("curl/8.0"));
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    c.bench_function("client_addr/xff_two_hops", |b| {
        b.iter(|| {
            client_addr(
                black_box(peer),
                black_box(&headers),
                &trusted,
                ForwardedHeader::XForwardedFor,
                Scheme::Http,
            )
        })
    });

    // About one client in five is IPv6; a privacy address (eight full groups,
    // no `::`) is the usual spelling, and the dearest for a general parser.
    let mut v6_headers = HeaderMap::new();
    v6_headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("2a02:8109:9a3f:f500:5d1c:e1b3:2bd9:4f0e, 127.0.0.1"),
    );
    v6_headers.insert("user-agent", HeaderValue::from_static("curl/8.0"));
    c.bench_function("client_addr/xff_two_hops_ipv6", |b| {
        b.iter(|| {
            client_addr(
                black_box(peer),
                black_box(&v6_headers),
                &trusted,
                ForwardedHeader::XForwardedFor,
                Scheme::Http,
            )
        })
    });

    c.bench_function("path/parse_typical", |b| {
        b.iter(|| {
            CleanPath::parse(
                black_box("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"),
                4096,
            )
        })
    });

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let geo = GeoDb::open(
        &[root.join("geoip/demo-city.mmdb")],
        Some(&root.join("geoip/demo-asn.mmdb")),
    )
    .unwrap();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    c.bench_function("geo/lookup_demo_city_and_asn", |b| {
        b.iter(|| geo.lookup(black_box(ip)))
    });

    let ms = mirrors();
    let cfg = SelectionConfig::default();
    let (location, _) = geo.lookup(ip);
    let client = Client {
        location,
        scheme: Scheme::Http,
    };
    let mut rng = SmallRng::seed_from_u64(1);
    c.bench_function("select/50_mirrors_located", |b| {
        b.iter(|| select(black_box(&ms), &client, &cfg, &mut rng))
    });
    // What the request path does: the place's ranking is remembered after
    // the first request from there, and later ones only draw and walk it.
    let cache = RankCache::default();
    c.bench_function("select/50_mirrors_located_rank_cache_hit", |b| {
        b.iter(|| {
            cache.select_for(black_box(&ms), &client, &cfg, &mut rng, |_| {
                Reason::Eligible
            })
        })
    });
    let unknown = Client {
        location: None,
        scheme: Scheme::Http,
    };
    c.bench_function("select/50_mirrors_unknown_client", |b| {
        b.iter(|| select(black_box(&ms), &unknown, &cfg, &mut rng))
    });
    // A list (?json, ?meta4) ranks every mirror: the cost should grow about
    // tenfold from 500 to 5,000 mirrors, not a hundredfold.
    for n in [500, 5000] {
        let many = mirrors_n(n);
        let all = SelectionConfig {
            link_mirrors: n,
            ..SelectionConfig::default()
        };
        c.bench_function(&format!("select/rank_all_{n}_mirrors"), |b| {
            b.iter(|| select(black_box(&many), &client, &all, &mut rng))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
