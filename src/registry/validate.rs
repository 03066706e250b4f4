//! Checking a registration request: from untrusted JSON to a mirror the
//! registry may keep, or every problem as `{field, error}`.
//!
//! The mirror's own fields go through the config's rules
//! ([`crate::config::check_entry`]), so a registered mirror and a config
//! mirror can never disagree on what a valid name, URL, country or weight
//! is. This module adds what only outside input needs: a body size cap,
//! string and list length caps, the contact and operator fields, and the
//! check that a mirror's host does not lead into the site's own network.
//!
//! Everything here is pure except [`check_target`], which resolves a host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::document::{RegisteredMirror, Timestamp};
use crate::config::{check_entry, check_name, MirrorConfig, MirrorEntry};

/// Largest request body read for one registration.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest mirror URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest contact address (RFC 5321's limit for a path).
pub const MAX_CONTACT_CHARS: usize = 254;
/// Longest other string (country, continent, list items).
const MAX_STRING_CHARS: usize = 64;
/// Most entries in one list (AS numbers, countries, continents).
pub const MAX_LIST_ITEMS: usize = 256;

/// A registration as a client sends it. Every field is optional here so
/// that a missing one is reported with the others.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
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
    /// An e-mail address for whoever runs the mirror.
    pub contact: Option<String>,
    /// The operator id the mirror belongs to.
    pub operator: Option<String>,
}

/// One problem with a request; `field` is absent when the body as a whole
/// is at fault (not JSON, too big).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub error: String,
}

impl FieldError {
    fn at(field: &str, error: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.to_owned()),
            error: error.into(),
        }
    }
}

/// A registration that passed every check.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The mirror, as typed as a config mirror.
    pub mirror: MirrorConfig,
    pub contact: Option<String>,
    pub operator: Option<String>,
}

impl Registration {
    /// The form the store keeps, created and updated `now`.
    pub fn to_stored(&self, now: Timestamp) -> RegisteredMirror {
        let m = &self.mirror;
        RegisteredMirror {
            url: m.url.to_string(),
            country: m.country.map(|c| c.to_string()),
            continent: m.continent.map(|c| c.to_string()),
            latitude: m.coords.map(|c| c.lat),
            longitude: m.coords.map(|c| c.lon),
            asn: m.asn.clone(),
            weight: m.weight,
            countries_only: texts(&m.countries_only),
            exclude_countries: texts(&m.exclude_countries),
            continents_only: texts(&m.continents_only),
            contact: self.contact.clone(),
            operator: self.operator.clone(),
            drained: false,
            created: now,
            updated: now,
        }
    }
}

/// The request that would register `stored` again under `name`: how a
/// stored mirror is checked again by the rules of a registration (when
/// mirrors are built from a document, which may have been edited by
/// hand), and the base that an edit's fields are laid over.
pub fn request_from_stored(name: &str, stored: &RegisteredMirror) -> RegistrationRequest {
    let list = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    RegistrationRequest {
        name: Some(name.to_owned()),
        url: Some(stored.url.clone()),
        country: stored.country.clone(),
        continent: stored.continent.clone(),
        latitude: stored.latitude,
        longitude: stored.longitude,
        asn: (!stored.asn.is_empty()).then(|| stored.asn.iter().map(|&a| i64::from(a)).collect()),
        weight: Some(i64::from(stored.weight)),
        countries_only: list(&stored.countries_only),
        exclude_countries: list(&stored.exclude_countries),
        continents_only: list(&stored.continents_only),
        contact: stored.contact.clone(),
        operator: stored.operator.clone(),
    }
}

fn texts<T: std::fmt::Display>(v: &[T]) -> Vec<String> {
    v.iter().map(T::to_string).collect()
}

/// Reads and checks a request body. Never panics, whatever the bytes.
pub fn parse_registration(body: &[u8]) -> Result<Registration, Vec<FieldError>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(vec![FieldError {
            field: None,
            error: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        }]);
    }
    // serde reads a struct from an array too, by position: refused, so a
    // field is only ever set by its name.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(vec![FieldError {
            field: None,
            error: "the body must be a JSON object ({\"name\": ..., \"url\": ...})".into(),
        }]);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let req: RegistrationRequest = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => return Err(vec![serde_error(e)]),
    };
    // Trailing bytes after the object are as wrong as a bad object.
    if let Err(e) = de.end() {
        return Err(vec![FieldError {
            field: None,
            error: e.to_string(),
        }]);
    }
    validate_registration(req)
}

/// Names the field a serde error is about, when there is one.
fn serde_error(e: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message = inner.to_string();
    // An unknown key is reported at the object that holds it; the key
    // itself is the field at fault.
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    let field = unknown.or_else(|| (path != ".").then_some(path));
    FieldError {
        field,
        error: message,
    }
}

/// Checks a request; all problems are reported together.
pub fn validate_registration(req: RegistrationRequest) -> Result<Registration, Vec<FieldError>> {
    let mut errors = caps(&req);
    if !errors.is_empty() {
        // Over-long input is refused before the finer checks echo it back.
        return Err(errors);
    }
    if let Some(c) = &req.contact {
        if let Err(e) = check_contact(c) {
            errors.push(FieldError::at("contact", e));
        }
    }
    if let Some(op) = &req.operator {
        if let Err(e) = check_name(op) {
            errors.push(FieldError::at("operator", e));
        }
    }
    let entry = MirrorEntry {
        name: req.name,
        url: req.url,
        country: req.country,
        continent: req.continent,
        latitude: req.latitude,
        longitude: req.longitude,
        asn: req.asn,
        weight: req.weight,
        countries_only: req.countries_only,
        exclude_countries: req.exclude_countries,
        continents_only: req.continents_only,
    };
    match check_entry(entry) {
        Ok(mirror) if errors.is_empty() => Ok(Registration {
            mirror,
            contact: req.contact,
            operator: req.operator,
        }),
        Ok(_) => Err(errors),
        Err(found) => {
            errors.extend(found.into_iter().map(|e| FieldError {
                field: (!e.place.is_empty()).then_some(e.place),
                error: e.message,
            }));
            if errors.is_empty() {
                errors.push(FieldError {
                    field: None,
                    error: "the mirror is not valid".into(),
                });
            }
            Err(errors)
        }
    }
}

/// Length limits on every string and list of a request.
fn caps(req: &RegistrationRequest) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut text = |field: &str, v: &Option<String>, max: usize| {
        if v.as_ref().is_some_and(|s| s.chars().count() > max) {
            out.push(FieldError::at(
                field,
                format!("is longer than {max} characters"),
            ));
        }
    };
    text("url", &req.url, MAX_URL_CHARS);
    text("contact", &req.contact, MAX_CONTACT_CHARS);
    // Names and operator ids have their own limit of 64 in check_name.
    text("name", &req.name, MAX_STRING_CHARS);
    text("operator", &req.operator, MAX_STRING_CHARS);
    text("country", &req.country, MAX_STRING_CHARS);
    text("continent", &req.continent, MAX_STRING_CHARS);
    let lists = [
        ("countries_only", &req.countries_only),
        ("exclude_countries", &req.exclude_countries),
        ("continents_only", &req.continents_only),
    ];
    for (field, list) in lists {
        let list = list.as_deref().unwrap_or_default();
        if list.len() > MAX_LIST_ITEMS {
            out.push(FieldError::at(
                field,
                format!("has more than {MAX_LIST_ITEMS} entries"),
            ));
        }
        for (j, s) in list.iter().enumerate() {
            if s.chars().count() > MAX_STRING_CHARS {
                out.push(FieldError::at(
                    &format!("{field}[{j}]"),
                    format!("is longer than {MAX_STRING_CHARS} characters"),
                ));
            }
        }
    }
    if req.asn.as_ref().is_some_and(|a| a.len() > MAX_LIST_ITEMS) {
        out.push(FieldError::at(
            "asn",
            format!("has more than {MAX_LIST_ITEMS} entries"),
        ));
    }
    out
}

/// A plausible e-mail address: `local@domain.tld`, no spaces or controls.
/// Deliberately loose (the full grammar admits far more); it only has to
/// catch a wrong field, not prove the mailbox exists.
pub fn check_contact(c: &str) -> Result<(), String> {
    if c.chars().count() > MAX_CONTACT_CHARS {
        return Err(format!("is longer than {MAX_CONTACT_CHARS} characters"));
    }
    if c.chars()
        .any(|ch| ch.is_whitespace() || ch.is_control() || "<>,;\"".contains(ch))
    {
        return Err("must be a plain e-mail address (no spaces, <>, commas or quotes)".into());
    }
    let shape_ok = c.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    });
    if shape_ok {
        Ok(())
    } else {
        Err(format!(
            "{c:?} is not an e-mail address such as ops@example.org"
        ))
    }
}

/// Whether a mirror may not point at `ip`: loopback, private, link-local,
/// unique-local, CGNAT, multicast, unspecified or reserved. These are the
/// addresses GeoIP cannot place ([`crate::geo::lookup_form`]), plus IPv6
/// forms that carry such an IPv4 address inside (NAT64, 6to4, the
/// deprecated IPv4-compatible form), through which a registration could
/// otherwise reach the site's own network.
pub fn is_private_target(ip: IpAddr) -> bool {
    if crate::geo::lookup_form(ip).is_none() {
        return true;
    }
    match ip {
        IpAddr::V4(_) => false,
        IpAddr::V6(v6) => {
            embedded_v4(v6).is_some_and(|v4| crate::geo::lookup_form(IpAddr::V4(v4)).is_none())
        }
    }
}

/// The IPv4 address inside an IPv6 one, for the forms that route to it.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let last4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0; 6] {
        // NAT64 well-known prefix 64:ff9b::/96; IPv4-compatible ::a.b.c.d.
        Some(last4)
    } else if s[0] == 0x2002 {
        // 6to4 2002:AABB:CCDD::/48.
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        None
    }
}

/// Refuses `addrs` (what the mirror's host resolves to) when any of them
/// is private and `allow_private` is off: with round-robin DNS, one
/// private answer is enough to aim probes and clients inward.
pub fn check_target_addresses(addrs: &[IpAddr], allow_private: bool) -> Result<(), FieldError> {
    if allow_private {
        return Ok(());
    }
    match addrs.iter().find(|ip| is_private_target(**ip)) {
        None => Ok(()),
        Some(ip) => Err(FieldError::at(
            "url",
            format!(
                "the host resolves to {ip}, a loopback, private, link-local or unique-local \
                 address; registered mirrors must be public (set \
                 registry.allow_private_targets: true to allow it)"
            ),
        )),
    }
}

/// Resolves the URL's host and applies [`check_target_addresses`]. Done
/// at registration and again at each probe, since DNS answers change.
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), FieldError> {
    let addrs: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(a)) => vec![IpAddr::V4(a)],
        Some(Host::Ipv6(a)) => vec![IpAddr::V6(a)],
        Some(Host::Domain(d)) => {
            if allow_private {
                return Ok(());
            }
            let port = url.port_or_known_default().unwrap_or(80);
            match tokio::net::lookup_host((d, port)).await {
                Ok(found) => found.map(|sa| sa.ip()).collect(),
                Err(e) => {
                    return Err(FieldError::at(
                        "url",
                        format!("cannot resolve the host {d:?}: {e}"),
                    ))
                }
            }
        }
        None => return Err(FieldError::at("url", "has no host")),
    };
    if addrs.is_empty() {
        return Err(FieldError::at("url", "the host has no address"));
    }
    check_target_addresses(&addrs, allow_private)
}
