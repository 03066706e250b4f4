//! Regenerates the demo GeoIP databases from their readable source:
//! `geoip/demo-networks.csv` -> `geoip/demo-city.mmdb` (MaxMind City layout)
//! and `geoip/demo-asn.mmdb` (MaxMind ASN layout).
//!
//! Run from the repository root: `cargo run --example geoip-gen`.
//! Optional arguments: `[CSV [OUT_DIR]]`. The output is byte-for-byte
//! reproducible (fixed build epoch), so an unchanged CSV gives no diff.

#[path = "../tests/support/geodb.rs"]
mod geodb;

use std::path::PathBuf;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let csv = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "geoip/demo-networks.csv".into()),
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| "geoip".into()));
    if args.next().is_some() {
        bail!("usage: geoip-gen [CSV [OUT_DIR]]");
    }

    let text =
        std::fs::read_to_string(&csv).with_context(|| format!("reading {}", csv.display()))?;
    let rows = geodb::parse_demo_csv(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("parsing {}", csv.display()))?;

    for (name, bytes) in [
        ("demo-city.mmdb", geodb::demo_city_db(&rows)),
        ("demo-asn.mmdb", geodb::demo_asn_db(&rows)),
    ] {
        let path = out.join(name);
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {} bytes", path.display(), bytes.len());
    }

    // Read them back through the project's own reader, so a bad CSV fails here.
    let db = mirrorgate::geo::GeoDb::open(
        &[out.join("demo-city.mmdb")],
        Some(&out.join("demo-asn.mmdb")),
    )?;
    for line in db.describe() {
        println!("{line}");
    }
    println!("{} networks", rows.len());
    Ok(())
}
