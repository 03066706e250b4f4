//! The documented example config loads with the values it shows, and the
//! loader never panics, whatever text it is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mirrorgate::config::Config;
use proptest::prelude::*;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mirrorgate.example.yaml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).expect("example config is readable")
}

#[test]
fn example_config_loads_with_its_values() {
    let c = match Config::load(&example_path()) {
        Ok(c) => c,
        Err(e) => panic!("example config:\n{e}"),
    };
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
    let geoip = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip");
    assert_eq!(
        c.geoip
            .city
            .iter()
            .map(|p| p.canonicalize().unwrap())
            .collect::<Vec<_>>(),
        [geoip.join("demo-city.mmdb").canonicalize().unwrap()]
    );
    assert_eq!(
        c.geoip.asn.as_ref().map(|p| p.canonicalize().unwrap()),
        Some(geoip.join("demo-asn.mmdb").canonicalize().unwrap())
    );
    let proxies: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(proxies, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(c.redirect_status.as_u16(), 302);
    assert_eq!(
        c.fallback.as_ref().map(|u| u.as_str()),
        Some("https://origin.example.org/pub/")
    );
    assert_eq!(c.health.interval, Duration::from_secs(10));
    assert_eq!(c.health.timeout, Duration::from_secs(2));
    assert_eq!((c.health.rise, c.health.fall), (2, 2));
    assert_eq!(c.health.path, "");
    assert_eq!(c.selection.band, 0.25);
    assert_eq!(c.selection.band_km, 500.0);
    assert_eq!(c.selection.link_mirrors, 4);
    assert_eq!(c.limits.max_path_bytes, 4096);
    assert_eq!(c.limits.max_connections, 10_000);
    assert!(c.admin.token.is_some());

    let names: Vec<&str> = c.mirrors.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["de-fra", "fr-par", "us-east", "br-sao", "jp-tyo", "au-syd"]
    );
    let de = &c.mirrors[0];
    assert_eq!(de.url.as_str(), "https://mirror.example.de/pub/");
    assert_eq!(de.country.map(|c| c.to_string()).as_deref(), Some("DE"));
    assert_eq!(de.continent.map(|c| c.to_string()).as_deref(), Some("EU"));
    let coords = de.coords.expect("de-fra has coordinates");
    assert_eq!((coords.lat, coords.lon), (50.11, 8.68));
    assert_eq!(de.asn, [24940]);
    assert_eq!(de.weight, 100);
    assert!(de.enabled);
    assert_eq!(c.mirrors[1].probe_path.as_deref(), Some("project/trace"));
    assert_eq!(c.mirrors[2].exclude_countries.len(), 1);
    let br = &c.mirrors[3];
    assert_eq!(
        br.countries_only
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
        ["BR"]
    );
    assert_eq!(c.mirrors[4].continents_only.len(), 2);
    let au = &c.mirrors[5];
    assert!(au.country.is_none() && au.coords.is_none());
    assert!(!au.enabled);

    let continents: std::collections::BTreeSet<_> =
        c.mirrors.iter().filter_map(|m| m.continent).collect();
    assert!(continents.len() >= 3, "mirrors on several continents");
}

#[test]
fn example_documents_every_key() {
    let text = example_text();
    for key in [
        "listen:",
        "admin_listen:",
        "geoip:",
        "city:",
        "asn:",
        "trusted_proxies:",
        "redirect_status:",
        "fallback:",
        "health:",
        "interval:",
        "timeout:",
        "rise:",
        "fall:",
        "path:",
        "selection:",
        "band:",
        "band_km:",
        "same_asn_factor:",
        "same_country_factor:",
        "link_mirrors:",
        "limits:",
        "max_path_bytes:",
        "header_timeout:",
        "shutdown_grace:",
        "max_connections:",
        "admin:",
        "token:",
        "token_file",
        "mirrors:",
        "name:",
        "url:",
        "country:",
        "continent:",
        "latitude:",
        "longitude:",
        "weight:",
        "enabled:",
        "probe_path:",
        "countries_only:",
        "exclude_countries:",
        "continents_only:",
    ] {
        assert!(text.contains(key), "example lacks {key}");
    }
}

/// One edit of the example text; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    DropLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        Just(":".to_owned()),
        Just("- ".to_owned()),
        Just("\n  ".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("[".to_owned()),
        Just("{".to_owned()),
        Just("\"".to_owned()),
        Just("\t".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("..".to_owned()),
        Just("\u{feff}".to_owned()),
        any::<String>(),
    ];
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), snippet).prop_map(|(p, s)| Edit::Insert(p, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        match e {
            Edit::Delete(p, n) => {
                let start = p % (chars.len() + 1);
                let end = (start + n).min(chars.len());
                chars.drain(start..end);
            }
            Edit::Insert(p, s) => {
                let at = p % (chars.len() + 1);
                chars.splice(at..at, s.chars());
            }
            Edit::DuplicateLine(i) | Edit::DropLine(i) | Edit::SwapLines(i, _) => {
                let joined: String = chars.iter().collect();
                let mut lines: Vec<&str> = joined.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let i = i % lines.len();
                match e {
                    Edit::DuplicateLine(_) => lines.insert(i, lines[i]),
                    Edit::DropLine(_) => {
                        lines.remove(i);
                    }
                    Edit::SwapLines(_, j) => {
                        let j = j % lines.len();
                        lines.swap(i, j);
                    }
                    _ => {}
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #[test]
    fn from_yaml_never_panics_on_any_text(text in any::<String>()) {
        let _ = Config::from_yaml(&text, Path::new("."));
    }

    #[test]
    fn from_yaml_never_panics_on_yamlish_text(text in "[a-z_:\\-\\[\\]{}&*!#|>'\" \n0-9.,]{0,200}") {
        let _ = Config::from_yaml(&text, Path::new("."));
    }

    #[test]
    fn from_yaml_never_panics_on_a_mutated_example(edits in prop::collection::vec(edit(), 1..6)) {
        let text = apply(&example_text(), &edits);
        let base = example_path();
        let base = base.parent().unwrap_or(Path::new("."));
        if let Err(errors) = Config::from_yaml(&text, base) {
            // Every error names a place unless it concerns the whole file.
            prop_assert!(!errors.0.is_empty());
            for e in &errors.0 {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
