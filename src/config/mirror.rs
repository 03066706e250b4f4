//! Checks of the `mirrors:` list: each entry on its own, then the names
//! across entries. Places are `mirrors[i].key` and `mirrors[i].key[j]`.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use super::file::RawMirror;
use super::sections::relative_path;
use super::validate::{base_url, Checker, ConfigError};
use super::{MirrorConfig, DEFAULT_WEIGHT};
use crate::geo::{Continent, Coords, CountryCode};

/// Longest mirror name: it is a metric label and a URL path segment.
const MAX_NAME_CHARS: usize = 64;

/// Checks every mirror; returns those that passed (the caller discards the
/// list anyway when any error was recorded).
pub(super) fn check_all(c: &mut Checker<'_>, raw: Vec<RawMirror>) -> Vec<MirrorConfig> {
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        if let Some(name) = &m.name {
            if let Some(first) = first_seen.get(name) {
                c.err(
                    format!("mirrors[{i}].name"),
                    format!(
                        "duplicate name {name:?} (also mirrors[{first}]); names must be unique"
                    ),
                );
            } else {
                first_seen.insert(name.clone(), i);
            }
        }
        if let Some(m) = check_one(c, &format!("mirrors[{i}]"), m) {
            out.push(m);
        }
    }
    out
}

/// The fields of one mirror that does not come from the file (a
/// registration through the admin API), as loose as the file's, so that
/// [`check_entry`] applies exactly the rules of a `mirrors:` entry.
#[derive(Debug, Default, Clone)]
pub struct MirrorEntry {
    pub name: Option<String>,
    pub url: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<Vec<i64>>,
    pub weight: Option<i64>,
    pub countries_only: Option<Vec<String>>,
    pub exclude_countries: Option<Vec<String>>,
    pub continents_only: Option<Vec<String>>,
}

/// Checks one entry by the rules of `mirrors:`; every error is returned,
/// its place relative to the entry (`url`, `asn[1]`).
pub fn check_entry(e: MirrorEntry) -> Result<MirrorConfig, Vec<ConfigError>> {
    let raw = RawMirror {
        name: e.name,
        url: e.url,
        country: e.country,
        continent: e.continent,
        latitude: e.latitude,
        longitude: e.longitude,
        asn: e.asn,
        weight: e.weight,
        enabled: None,
        probe_path: None,
        countries_only: e.countries_only,
        exclude_countries: e.exclude_countries,
        continents_only: e.continents_only,
    };
    let mut c = Checker::new(Path::new("."));
    let checked = check_one(&mut c, "", raw);
    match checked {
        Some(m) if c.errors.is_empty() => Ok(m),
        _ => Err(c
            .errors
            .into_iter()
            .map(|mut e| {
                // Checked at the place "", so places read ".url".
                if let Some(p) = e.place.strip_prefix('.') {
                    e.place = p.to_owned();
                }
                e
            })
            .collect()),
    }
}

fn check_one(c: &mut Checker<'_>, at: &str, m: RawMirror) -> Option<MirrorConfig> {
    let name = match m.name {
        None => {
            c.err(format!("{at}.name"), "is required");
            None
        }
        Some(n) => c.ok(&format!("{at}.name"), check_name(&n).map(|()| n)),
    };
    let url = match m.url {
        None => {
            c.err(format!("{at}.url"), "is required");
            None
        }
        Some(u) => c.ok(&format!("{at}.url"), base_url(&u)),
    };
    let country = m
        .country
        .and_then(|s| c.ok(&format!("{at}.country"), CountryCode::from_str(s.trim())));
    let continent = m
        .continent
        .and_then(|s| c.ok(&format!("{at}.continent"), Continent::from_str(s.trim())));
    if let (Some(cc), Some(cont)) = (country, continent) {
        if cc.continent() != cont {
            c.err(
                format!("{at}.continent"),
                format!(
                    "{cont} does not match country {cc}, which is in {}",
                    cc.continent()
                ),
            );
        }
    }
    let coords = coords(c, at, m.latitude, m.longitude);
    let asn = asns(c, at, m.asn.unwrap_or_default());
    let weight = c.int_in(
        &format!("{at}.weight"),
        m.weight,
        1..=1_000_000,
        DEFAULT_WEIGHT,
    );
    let probe_path = m.probe_path.and_then(|p| {
        let place = format!("{at}.probe_path");
        let rel = c.ok(&place, relative_path(&p))?;
        // Belt and braces: whatever the spelling, the joined URL must stay under the mirror's.
        if let Some(base) = &url {
            let inside = base
                .join(&rel)
                .is_ok_and(|j| j.as_str().starts_with(base.as_str()));
            if !inside {
                c.err(&place, format!("{p:?} leads outside the mirror's URL"));
                return None;
            }
        }
        Some(rel)
    });
    let countries_only = codes::<CountryCode>(c, &format!("{at}.countries_only"), m.countries_only);
    let exclude_countries =
        codes::<CountryCode>(c, &format!("{at}.exclude_countries"), m.exclude_countries);
    if !countries_only.is_empty() && !exclude_countries.is_empty() {
        c.err(
            format!("{at}.exclude_countries"),
            "cannot be used with countries_only: the allow list already keeps out every \
             country it does not name, so a deny list beside it is redundant or a mistake",
        );
    }
    let continents_only =
        codes::<Continent>(c, &format!("{at}.continents_only"), m.continents_only);
    Some(MirrorConfig {
        name: name?,
        url: url?,
        country,
        continent,
        coords,
        asn,
        weight,
        enabled: m.enabled.unwrap_or(true),
        probe_path,
        countries_only,
        exclude_countries,
        continents_only,
    })
}

/// Names become metric labels and URL path segments, hence the narrow alphabet.
pub fn check_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("is empty".into());
    }
    if n.chars().count() > MAX_NAME_CHARS {
        return Err(format!("{n:?} is longer than {MAX_NAME_CHARS} characters"));
    }
    if let Some(bad) = n
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')))
    {
        return Err(format!(
            "{n:?} contains {bad:?}; use only letters, digits, '.', '_' and '-'"
        ));
    }
    if n.chars().all(|ch| ch == '.') {
        // "." and ".." are dot-segments in a URL path.
        return Err(format!(
            "{n:?} is not a usable name; it needs a letter or digit"
        ));
    }
    Ok(())
}

fn coords(c: &mut Checker<'_>, at: &str, lat: Option<f64>, lon: Option<f64>) -> Option<Coords> {
    let (lat, lon) = match (lat, lon) {
        (None, None) => return None,
        (Some(_), None) => {
            c.err(
                format!("{at}.longitude"),
                "is missing; give latitude and longitude together, or neither",
            );
            return None;
        }
        (None, Some(_)) => {
            c.err(
                format!("{at}.latitude"),
                "is missing; give latitude and longitude together, or neither",
            );
            return None;
        }
        (Some(a), Some(b)) => (a, b),
    };
    let mut ok = true;
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        c.err(
            format!("{at}.latitude"),
            format!("{lat} is out of range -90..=90"),
        );
        ok = false;
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        c.err(
            format!("{at}.longitude"),
            format!("{lon} is out of range -180..=180"),
        );
        ok = false;
    }
    ok.then_some(Coords { lat, lon })
}

fn asns(c: &mut Checker<'_>, at: &str, list: Vec<i64>) -> Vec<u32> {
    let mut out = Vec::with_capacity(list.len());
    for (j, n) in list.into_iter().enumerate() {
        match u32::try_from(n) {
            Ok(a) if a > 0 => out.push(a),
            _ => c.err(
                format!("{at}.asn[{j}]"),
                format!("{n} is not an AS number (1..=4294967295)"),
            ),
        }
    }
    out
}

/// Parses a list of codes, each error at its own index.
fn codes<T: FromStr<Err = String>>(
    c: &mut Checker<'_>,
    place: &str,
    list: Option<Vec<String>>,
) -> Vec<T> {
    let list = list.unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    for (j, s) in list.iter().enumerate() {
        if let Some(v) = c.ok(&format!("{place}[{j}]"), T::from_str(s.trim())) {
            out.push(v);
        }
    }
    out
}
