//! One test per check: each asserts the exact place of the error and a word
//! of its message, on a file that is otherwise valid.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::*;

/// A directory with the files configs in these tests refer to.
fn base() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("mirrorgate-config-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("city.mmdb"), b"").unwrap();
        std::fs::write(dir.join("city6.mmdb"), b"").unwrap();
        std::fs::write(dir.join("asn.mmdb"), b"").unwrap();
        std::fs::write(dir.join("token"), b"  0123456789abcdef-secret\n").unwrap();
        std::fs::write(dir.join("big-token"), vec![b'a'; 5000]).unwrap();
        std::fs::write(dir.join("binary-token"), [0xff_u8; 20]).unwrap();
        dir
    })
}

fn load(yaml: &str) -> Result<Config, Vec<ConfigError>> {
    from_yaml(yaml, base()).map_err(|e| e.0)
}

fn ok(yaml: &str) -> Config {
    match load(yaml) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{}", ConfigErrors(e)),
    }
}

/// The single error of a file that has exactly one.
fn only_err(yaml: &str) -> ConfigError {
    match load(yaml) {
        Ok(c) => panic!("loaded: {c:?}"),
        Err(mut e) if e.len() == 1 => e.remove(0),
        Err(e) => panic!("expected one error, got:\n{}", ConfigErrors(e)),
    }
}

#[track_caller]
fn assert_err(yaml: &str, place: &str, word: &str) {
    let e = only_err(yaml);
    assert_eq!(e.place, place, "{e}");
    assert!(e.message.contains(word), "{e:?} lacks {word:?}");
}

const FALLBACK: &str = "fallback: https://origin.example.org/pub/\n";

/// A file with one mirror; `extra` adds keys to the mirror.
fn mirror(extra: &str) -> String {
    let mut s = String::from("mirrors:\n  - name: m0\n    url: https://m0.example.net/pub/\n");
    for line in extra.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn with_fallback(rest: &str) -> String {
    format!("{FALLBACK}{rest}")
}

#[test]
fn defaults() {
    let c = ok(FALLBACK);
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(c.redirect_status, StatusCode::FOUND);
    assert!(c.trusted_proxies.is_empty());
    assert!(c.geoip.city.is_empty() && c.geoip.asn.is_none());
    assert_eq!(c.health.interval, Duration::from_secs(10));
    assert_eq!(c.health.timeout, Duration::from_secs(2));
    assert_eq!((c.health.rise, c.health.fall), (2, 2));
    assert_eq!(c.health.path, "");
    assert_eq!(c.selection.band, 0.25);
    assert_eq!(c.selection.band_km, 500.0);
    assert_eq!(c.selection.same_asn_factor, 0.5);
    assert_eq!(c.selection.same_country_factor, 0.75);
    assert_eq!(c.selection.link_mirrors, 4);
    assert_eq!(c.limits.max_path_bytes, 4096);
    assert_eq!(c.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.limits.max_connections, 10_000);
    assert!(c.admin.token.is_none());
    assert!(c.mirrors.is_empty());

    let m = &ok(&mirror("")).mirrors[0];
    assert_eq!(m.weight, 100);
    assert!(m.enabled);
    assert!(m.country.is_none() && m.continent.is_none() && m.coords.is_none());
    assert!(m.asn.is_empty() && m.probe_path.is_none());
}

#[test]
fn listen_must_be_ip_and_port() {
    assert_err(
        &with_fallback("listen: localhost:8080\n"),
        "listen",
        "ip:port",
    );
    assert_err(&with_fallback("listen: 127.0.0.1\n"), "listen", "ip:port");
    assert_err(
        &with_fallback("admin_listen: \"[::1]\"\n"),
        "admin_listen",
        "ip:port",
    );
    let c = ok(&with_fallback(
        "listen: \"[::]:80\"\nadmin_listen: 127.0.0.1:9000\n",
    ));
    assert_eq!(c.listen.to_string(), "[::]:80");
}

#[test]
fn admin_listen_differs_from_listen() {
    let same = "listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\n";
    assert_err(&with_fallback(same), "admin_listen", "differ");
    let wildcard = "listen: 0.0.0.0:9000\nadmin_listen: 127.0.0.1:9000\n";
    assert_err(&with_fallback(wildcard), "admin_listen", "differ");
    ok(&with_fallback(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\n",
    ));
    ok(&with_fallback(
        "listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.2:9000\n",
    ));
}

#[test]
fn trusted_proxies_are_cidrs_or_addresses() {
    let c = ok(&with_fallback(
        "trusted_proxies: [10.0.0.0/8, \"::1\", 192.0.2.7, 10.1.2.3/16]\n",
    ));
    let got: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        got,
        ["10.0.0.0/8", "::1/128", "192.0.2.7/32", "10.1.0.0/16"]
    );
    assert_err(
        &with_fallback("trusted_proxies: [10.0.0.0/8, 127.0.0.1, 10.0.0.0/33]\n"),
        "trusted_proxies[2]",
        "CIDR",
    );
    assert_err(
        &with_fallback("trusted_proxies: [proxy.local]\n"),
        "trusted_proxies[0]",
        "address",
    );
}

#[test]
fn redirect_status_is_a_redirect() {
    assert_eq!(
        ok(&with_fallback("redirect_status: 308\n")).redirect_status,
        StatusCode::PERMANENT_REDIRECT
    );
    assert_err(
        &with_fallback("redirect_status: 304\n"),
        "redirect_status",
        "307",
    );
    assert_err(
        &with_fallback("redirect_status: 200\n"),
        "redirect_status",
        "redirect",
    );
}

#[test]
fn fallback_url_checks_and_normalisation() {
    let c = ok("fallback: https://origin.example.org/pub\n");
    assert_eq!(
        c.fallback.map(|u| u.to_string()).as_deref(),
        Some("https://origin.example.org/pub/")
    );
    assert_err(
        "fallback: ftp://origin.example.org/\n",
        "fallback",
        "scheme",
    );
    assert_err("fallback: /pub/\n", "fallback", "absolute");
    assert_err("fallback: \"https://:443/pub/\"\n", "fallback", "host");
    assert_err(
        "fallback: https://u:p@origin.example.org/\n",
        "fallback",
        "user info",
    );
    assert_err(
        "fallback: https://origin.example.org/?a=1\n",
        "fallback",
        "query",
    );
    assert_err(
        "fallback: https://origin.example.org/#x\n",
        "fallback",
        "fragment",
    );
}

#[test]
fn mirror_url_checks_and_normalisation() {
    let c = ok("mirrors:\n  - name: a\n    url: http://m.example.net\n");
    assert_eq!(c.mirrors[0].url.as_str(), "http://m.example.net/");
    let c = ok("mirrors:\n  - name: a\n    url: http://m.example.net/debian\n");
    assert_eq!(c.mirrors[0].url.as_str(), "http://m.example.net/debian/");
    let bad = |u: &str| format!("{FALLBACK}mirrors:\n  - name: a\n    url: \"{u}\"\n");
    assert_err(&bad("rsync://m.example.net/"), "mirrors[0].url", "scheme");
    assert_err(&bad("m.example.net/pub"), "mirrors[0].url", "absolute");
    assert_err(
        &bad("https://user@m.example.net/"),
        "mirrors[0].url",
        "user info",
    );
    assert_err(&bad("https://m.example.net/?x"), "mirrors[0].url", "query");
    assert_err(
        &bad("https://m.example.net/#x"),
        "mirrors[0].url",
        "fragment",
    );
    assert_err(
        &format!("{FALLBACK}mirrors:\n  - name: a\n"),
        "mirrors[0].url",
        "required",
    );
}

#[test]
fn mirror_names() {
    let named =
        |n: &str| format!("{FALLBACK}mirrors:\n  - name: \"{n}\"\n    url: https://a.example/\n");
    ok(&named("de-fra_1.example"));
    assert_err(&named(""), "mirrors[0].name", "empty");
    assert_err(&named("de fra"), "mirrors[0].name", "letters, digits");
    assert_err(&named("de/fra"), "mirrors[0].name", "'/'");
    assert_err(&named("dé"), "mirrors[0].name", "letters");
    assert_err(&named(&"a".repeat(65)), "mirrors[0].name", "64");
    ok(&named(&"a".repeat(64)));
    assert_err(&named(".."), "mirrors[0].name", "usable");
    assert_err(
        &format!("{FALLBACK}mirrors:\n  - url: https://a.example/\n"),
        "mirrors[0].name",
        "required",
    );
    let dup = "mirrors:\n  - {name: a, url: 'https://a.example/'}\n  - {name: b, url: 'https://b.example/'}\n  - {name: a, url: 'https://c.example/'}\n";
    assert_err(dup, "mirrors[2].name", "duplicate");
    assert_err(dup, "mirrors[2].name", "mirrors[0]");
}

#[test]
fn mirror_weight() {
    assert_eq!(ok(&mirror("weight: 1")).mirrors[0].weight, 1);
    assert_eq!(ok(&mirror("weight: 1000000")).mirrors[0].weight, 1_000_000);
    assert_err(&mirror("weight: 0"), "mirrors[0].weight", "range");
    assert_err(
        &mirror("weight: 1000001"),
        "mirrors[0].weight",
        "1..=1000000",
    );
    assert_err(&mirror("weight: -3"), "mirrors[0].weight", "range");
}

#[test]
fn mirror_coordinates() {
    let c = ok(&mirror("latitude: 50.11\nlongitude: 8.68"));
    let coords = c.mirrors[0].coords.unwrap();
    assert_eq!((coords.lat, coords.lon), (50.11, 8.68));
    assert_err(
        &mirror("latitude: 50.11"),
        "mirrors[0].longitude",
        "missing",
    );
    assert_err(&mirror("longitude: 8.68"), "mirrors[0].latitude", "missing");
    assert_err(
        &mirror("latitude: 91\nlongitude: 8"),
        "mirrors[0].latitude",
        "range",
    );
    assert_err(
        &mirror("latitude: 1\nlongitude: -180.5"),
        "mirrors[0].longitude",
        "range",
    );
    assert_err(
        &mirror("latitude: .nan\nlongitude: 0"),
        "mirrors[0].latitude",
        "range",
    );
}

#[test]
fn mirror_country_and_continent_codes() {
    let c = ok(&mirror("country: de\ncontinent: eu"));
    assert_eq!(
        c.mirrors[0].country.map(|c| c.to_string()).as_deref(),
        Some("DE")
    );
    assert_eq!(c.mirrors[0].continent, Some(crate::geo::Continent::EU));
    assert_err(&mirror("country: DEU"), "mirrors[0].country", "ISO 3166");
    assert_err(
        &mirror("continent: XX"),
        "mirrors[0].continent",
        "continent",
    );
    assert_err(
        &mirror("country: DE\ncontinent: NA"),
        "mirrors[0].continent",
        "does not match country DE",
    );
}

#[test]
fn mirror_code_lists() {
    let c = ok(&mirror(
        "countries_only: [DE, at, CH]\ncontinents_only: [EU]",
    ));
    assert_eq!(c.mirrors[0].countries_only.len(), 3);
    assert_eq!(c.mirrors[0].continents_only.len(), 1);
    assert_err(
        &mirror("countries_only: [DE, FR, IT, \"12\"]"),
        "mirrors[0].countries_only[3]",
        "country",
    );
    assert_err(
        &mirror("exclude_countries: [DE, Germany]"),
        "mirrors[0].exclude_countries[1]",
        "country",
    );
    assert_err(
        &mirror("continents_only: [EU, Europe]"),
        "mirrors[0].continents_only[1]",
        "continent",
    );
}

#[test]
fn allow_and_deny_country_lists_exclude_each_other() {
    assert_err(
        &mirror("countries_only: [DE]\nexclude_countries: [FR]"),
        "mirrors[0].exclude_countries",
        "countries_only",
    );
    ok(&mirror("countries_only: [DE]\nexclude_countries: []"));
}

#[test]
fn mirror_asns() {
    assert_eq!(
        ok(&mirror("asn: [1, 4294967295]")).mirrors[0].asn,
        [1, 4_294_967_295]
    );
    assert_err(&mirror("asn: [24940, 0]"), "mirrors[0].asn[1]", "AS number");
    assert_err(
        &mirror("asn: [4294967296]"),
        "mirrors[0].asn[0]",
        "AS number",
    );
    assert_err(&mirror("asn: [-5]"), "mirrors[0].asn[0]", "AS number");
}

#[test]
fn health_rise_and_fall() {
    let c = ok(&with_fallback("health:\n  rise: 1\n  fall: 100\n"));
    assert_eq!((c.health.rise, c.health.fall), (1, 100));
    assert_err(
        &with_fallback("health:\n  rise: 0\n"),
        "health.rise",
        "range",
    );
    assert_err(
        &with_fallback("health:\n  fall: 101\n"),
        "health.fall",
        "1..=100",
    );
}

#[test]
fn health_interval_and_timeout() {
    let c = ok(&with_fallback(
        "health:\n  interval: 1m30s\n  timeout: 500ms\n",
    ));
    assert_eq!(c.health.interval, Duration::from_secs(90));
    assert_eq!(c.health.timeout, Duration::from_millis(500));
    assert_err(
        &with_fallback("health:\n  interval: 50ms\n  timeout: 10ms\n"),
        "health.interval",
        "100ms",
    );
    assert_err(
        &with_fallback("health:\n  timeout: 0s\n"),
        "health.timeout",
        "zero",
    );
    assert_err(
        &with_fallback("health:\n  interval: 5s\n  timeout: 5s\n"),
        "health.timeout",
        "shorter",
    );
    assert_err(
        &with_fallback("health:\n  interval: 10\n"),
        "health.interval",
        "unit",
    );
    assert_err(
        &with_fallback("health:\n  timeout: 2 seconds\n"),
        "health.timeout",
        "unit",
    );
}

#[test]
fn probe_paths_stay_relative() {
    let c = ok(&with_fallback("health:\n  path: /trace/site.txt\n"));
    assert_eq!(c.health.path, "trace/site.txt");
    assert_eq!(ok(&with_fallback("health:\n  path: /\n")).health.path, "");
    assert_err(
        &with_fallback("health:\n  path: /a/../../etc\n"),
        "health.path",
        "..",
    );
    assert_err(
        &with_fallback("health:\n  path: \"/a b\"\n"),
        "health.path",
        "spaces",
    );
    let c = ok(&mirror("probe_path: //project/TIME"));
    assert_eq!(c.mirrors[0].probe_path.as_deref(), Some("project/TIME"));
    assert_err(
        &mirror("probe_path: /x/%2E%2E/y"),
        "mirrors[0].probe_path",
        "..",
    );
    assert_err(
        &mirror("probe_path: \"..\\\\x\""),
        "mirrors[0].probe_path",
        "'\\'",
    );
}

#[test]
fn geoip_files_must_be_readable() {
    let c = ok(&with_fallback(
        "geoip:\n  city: city.mmdb\n  asn: asn.mmdb\n",
    ));
    assert_eq!(c.geoip.city, [base().join("city.mmdb")]);
    assert_eq!(c.geoip.asn, Some(base().join("asn.mmdb")));
    let c = ok(&with_fallback("geoip:\n  city: [city.mmdb, city6.mmdb]\n"));
    assert_eq!(c.geoip.city.len(), 2);
    let abs = base().join("city.mmdb");
    let c = ok(&with_fallback(&format!(
        "geoip:\n  city: \"{}\"\n",
        abs.display()
    )));
    assert_eq!(c.geoip.city, [abs]);

    let e = only_err(&with_fallback("geoip:\n  city: nope.mmdb\n"));
    assert_eq!(e.place, "geoip.city");
    assert!(
        e.message
            .contains(&base().join("nope.mmdb").display().to_string()),
        "{e}"
    );
    assert_err(
        &with_fallback("geoip:\n  city: [city.mmdb, v6.mmdb]\n"),
        "geoip.city[1]",
        "v6.mmdb",
    );
    assert_err(
        &with_fallback("geoip:\n  city: sub\n"),
        "geoip.city",
        "directory",
    );
    assert_err(
        &with_fallback("geoip:\n  asn: missing-asn.mmdb\n"),
        "geoip.asn",
        "cannot open",
    );
    assert_err(
        &with_fallback("geoip:\n  asn: \"\"\n"),
        "geoip.asn",
        "empty",
    );
}

#[test]
fn selection_ranges() {
    let c = ok(&with_fallback(
        "selection:\n  band: 0\n  band_km: 0\n  same_asn_factor: 1\n  same_country_factor: 0.1\n  link_mirrors: 16\n",
    ));
    assert_eq!(c.selection.link_mirrors, 16);
    assert_err(
        &with_fallback("selection:\n  same_asn_factor: 0\n"),
        "selection.same_asn_factor",
        "more than 0",
    );
    assert_err(
        &with_fallback("selection:\n  same_country_factor: 1.5\n"),
        "selection.same_country_factor",
        "at most 1",
    );
    assert_err(
        &with_fallback("selection:\n  band: -0.1\n"),
        "selection.band",
        "at least 0",
    );
    assert_err(
        &with_fallback("selection:\n  band_km: -1\n"),
        "selection.band_km",
        "at least 0",
    );
    assert_err(
        &with_fallback("selection:\n  band_km: .inf\n"),
        "selection.band_km",
        "at least 0",
    );
    assert_err(
        &with_fallback("selection:\n  link_mirrors: 17\n"),
        "selection.link_mirrors",
        "0..=16",
    );
}

#[test]
fn limits_are_positive() {
    let c = ok(&with_fallback("limits:\n  max_path_bytes: 1\n  header_timeout: 1s\n  shutdown_grace: 1m\n  max_connections: 5\n"));
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(60));
    assert_err(
        &with_fallback("limits:\n  max_path_bytes: 0\n"),
        "limits.max_path_bytes",
        "more than 0",
    );
    assert_err(
        &with_fallback("limits:\n  max_connections: -1\n"),
        "limits.max_connections",
        "more than 0",
    );
    assert_err(
        &with_fallback("limits:\n  header_timeout: 0ms\n"),
        "limits.header_timeout",
        "zero",
    );
    assert_err(
        &with_fallback("limits:\n  shutdown_grace: 0s\n"),
        "limits.shutdown_grace",
        "zero",
    );
}

#[test]
fn idle_timeout() {
    let d = ok(&with_fallback(""));
    assert_eq!(d.limits.idle_timeout, Duration::from_secs(60));
    let c = ok(&with_fallback("limits:\n  idle_timeout: 5s\n"));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(5));
    for (yaml, place, word) in [
        (
            "limits:\n  idle_timeout: 0s\n",
            "limits.idle_timeout",
            "zero",
        ),
        ("limits:\n  idle_timeout: soon\n", "limits.idle_timeout", ""),
    ] {
        assert_err(&with_fallback(yaml), place, word);
    }
}

#[test]
fn send_timeout() {
    let d = ok(&with_fallback(""));
    assert_eq!(d.limits.send_timeout, Duration::from_secs(30));
    let c = ok(&with_fallback("limits:\n  send_timeout: 2s\n"));
    assert_eq!(c.limits.send_timeout, Duration::from_secs(2));
    assert_err(
        &with_fallback("limits:\n  send_timeout: 0ms\n"),
        "limits.send_timeout",
        "zero",
    );
    assert_err(
        &with_fallback("limits:\n  send_timeout: soon\n"),
        "limits.send_timeout",
        "",
    );
}

#[test]
fn admin_listener_limits() {
    let d = ok(&with_fallback(""));
    assert_eq!(d.admin.header_timeout, Duration::from_secs(10));
    assert_eq!(d.admin.max_connections, 64);
    let c = ok(&with_fallback(
        "admin:\n  header_timeout: 3s\n  max_connections: 7\n",
    ));
    assert_eq!(c.admin.header_timeout, Duration::from_secs(3));
    assert_eq!(c.admin.max_connections, 7);
    for (yaml, place, word) in [
        (
            "admin:\n  header_timeout: 0s\n",
            "admin.header_timeout",
            "zero",
        ),
        (
            "admin:\n  header_timeout: soon\n",
            "admin.header_timeout",
            "",
        ),
        (
            "admin:\n  max_connections: 0\n",
            "admin.max_connections",
            "more than 0",
        ),
    ] {
        assert_err(&with_fallback(yaml), place, word);
    }
}

#[test]
fn a_mirror_or_a_fallback_is_required() {
    assert_err("listen: 127.0.0.1:8080\n", "mirrors", "503");
    assert_err("mirrors: []\n", "mirrors", "503");
    assert_err(&mirror("enabled: false"), "mirrors", "fallback");
    ok(&mirror(""));
    ok(&with_fallback(&mirror("enabled: false")));
}

#[test]
fn admin_token() {
    let c = ok(&with_fallback("admin:\n  token: 0123456789abcdef\n"));
    assert_eq!(c.admin.token.as_deref(), Some("0123456789abcdef"));
    assert!(
        !format!("{:?}", c.admin).contains("0123"),
        "Debug must hide the token"
    );
    let c = ok(&with_fallback("admin:\n  token_file: token\n"));
    assert_eq!(c.admin.token.as_deref(), Some("0123456789abcdef-secret"));
    assert_err(
        &with_fallback("admin:\n  token: \"\"\n"),
        "admin.token",
        "empty",
    );
    assert_err(
        &with_fallback("admin:\n  token: short\n"),
        "admin.token",
        "16",
    );
    assert_err(
        &with_fallback("admin:\n  token: \"0123456789 abcdef\"\n"),
        "admin.token",
        "printable",
    );
    assert_err(
        &with_fallback("admin:\n  token: 0123456789abcdef\n  token_file: token\n"),
        "admin",
        "not both",
    );
    assert_err(
        &with_fallback("admin:\n  token_file: no-such-token\n"),
        "admin.token_file",
        "no-such-token",
    );
    assert_err(
        &with_fallback("admin:\n  token_file: big-token\n"),
        "admin.token_file",
        "4096",
    );
    assert_err(
        &with_fallback("admin:\n  token_file: binary-token\n"),
        "admin.token_file",
        "cannot read",
    );
    ok(&with_fallback("admin: {}\n"));
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = "\
listen: nowhere
redirect_status: 200
health:
  rise: 0
mirrors:
  - name: a
    url: ftp://a.example/
  - name: b
    url: https://b.example/
    asn: [0]
";
    let errors = load(yaml).unwrap_err();
    let places: Vec<&str> = errors.iter().map(|e| e.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "listen",
            "redirect_status",
            "health.rise",
            "mirrors[0].url",
            "mirrors[1].asn[0]"
        ]
    );
    let text = ConfigErrors(errors).to_string();
    assert_eq!(text.lines().count(), 5);
    assert!(
        text.starts_with("listen: \"nowhere\" is not ip:port"),
        "{text}"
    );
}

#[test]
fn load_resolves_paths_against_the_file() {
    let file = base().join("sub").join("mirrorgate.yaml");
    std::fs::write(
        &file,
        "geoip:\n  city: ../city.mmdb\nfallback: https://o.example/\n",
    )
    .unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.geoip.city, [base().join("sub").join("../city.mmdb")]);

    let missing = base().join("absent.yaml");
    let e = Config::load(&missing).unwrap_err();
    assert_eq!(e.0[0].place, missing.display().to_string());
    assert!(e.0[0].message.contains("cannot read"), "{e}");
}
