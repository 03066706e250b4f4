//! The JSON answer (`?json`, `Accept: application/json`): the ranking and the
//! file's facts for scripts and tools. The schema is documented in the README
//! ("Answers for clients"), and `tests/formats.rs` checks it field by field.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{rfc3339, Listing};

/// The JSON document for `listing`. Absent facts are `null`, never `""` or `-1`.
pub fn json(listing: &Listing) -> Value {
    let file = listing.file.map(|f| {
        json!({
            "size": f.size,
            "mtime": f.mtime,
            "mtime_rfc3339": rfc3339_from_epoch(f.mtime),
            "sha256": f.sha256.map(hex::encode),
        })
    });
    let mirrors: Vec<Value> = listing
        .mirrors
        .iter()
        .map(|m| {
            json!({
                "rank": m.rank,
                "name": m.name,
                "url": m.url,
                "base_url": m.base_url,
                "country": m.country.map(|c| c.as_str().to_string()),
                "continent": m.continent.map(|c| c.as_str()),
                "distance_km": m.distance_km.map(round1),
                "state": m.state.as_str(),
                "last_sync": m.last_sync.and_then(rfc3339),
            })
        })
        .collect();
    let left_out: Vec<Value> = listing
        .left_out
        .iter()
        .map(|l| json!({ "name": l.name, "reason": l.reason, "detail": l.detail }))
        .collect();
    let c = &listing.client;
    json!({
        "path": listing.path,
        "path_encoded": listing.path_encoded,
        "file": file,
        "client": {
            "country": c.country.map(|c| c.as_str().to_string()),
            "continent": c.continent.map(|c| c.as_str()),
            "latitude": c.latitude,
            "longitude": c.longitude,
        },
        "mirrors": mirrors,
        "left_out": left_out,
        "page": {
            "offset": listing.page.offset,
            "limit": listing.page.limit,
            "mirrors_total": listing.page.mirrors_total,
            "left_out_total": listing.page.left_out_total,
        },
    })
}

/// `mtime` as RFC 3339; `null` outside the years 1970..=9999.
fn rfc3339_from_epoch(secs: i64) -> Option<String> {
    let secs = u64::try_from(secs).ok()?;
    rfc3339(UNIX_EPOCH.checked_add(Duration::from_secs(secs))?)
}

/// Distances to 0.1 km, as `explain` shows them: more digits are noise.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
