//! Client addresses for the load benchmark (`benches/load.sh`), drawn from a
//! real GeoLite2 City database so that every request costs a real lookup.
//!
//! It walks every network of the database, keeps a fixed-size random sample
//! of networks per country and address family, then picks addresses inside
//! them: half round robin over the countries (so that small countries appear),
//! half in proportion to each country's number of networks (so that large
//! ones weigh more, as in real traffic). About one address in five is IPv6
//! where the country has IPv6 networks. Each address is checked with
//! mirrorgate's own lookup: it must be `Found`, with the expected country.
//!
//! Usage: `bench-addrs CITY_DB OUT [COUNT]` (COUNT defaults to 2000). Writes
//! `IP COUNTRY` lines to OUT. The sample is seeded: the same database gives
//! the same list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use maxminddb::{PathElement, Reader, WithinOptions};
use mirrorgate::geo::{GeoDb, LookupOutcome};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Networks kept per country and family.
const SAMPLE: usize = 64;
/// Share of addresses taken as IPv6, where a country has IPv6 networks.
const V6_SHARE: f64 = 0.2;
/// Fixed seed: the list depends on the database only.
const SEED: u64 = 0x6d69_7272_6f72_6761;

/// A network: its first address and prefix length.
type Net = (IpAddr, u8);

/// The networks of one country, sampled per family.
#[derive(Default)]
struct Country {
    seen: [usize; 2],
    sample: [Vec<Net>; 2],
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(out)) = (args.next(), args.next()) else {
        bail!("usage: bench-addrs CITY_DB OUT [COUNT]");
    };
    let count: usize = match args.next() {
        Some(n) => n.parse().context("COUNT")?,
        None => 2000,
    };
    let (db, out) = (PathBuf::from(db), PathBuf::from(out));
    let mut rng = SmallRng::seed_from_u64(SEED);

    let countries = sample_networks(&db, &mut rng)?;
    if countries.len() < 100 {
        bail!(
            "{}: only {} countries; not a world-wide City database?",
            db.display(),
            countries.len()
        );
    }
    let geo =
        GeoDb::open(std::slice::from_ref(&db), None).context("opening with mirrorgate's reader")?;

    let codes: Vec<&String> = countries.keys().collect();
    let total: usize = countries.values().map(|c| c.seen[0] + c.seen[1]).sum();
    let mut picked: Vec<(IpAddr, &str)> = Vec::with_capacity(count);
    let mut unique = HashSet::new();
    let mut attempts = 0usize;
    while picked.len() < count {
        attempts += 1;
        if attempts > count * 20 {
            bail!("could only find {} usable addresses", picked.len());
        }
        // Even turns: the next country in turn; odd turns: one in proportion to its networks.
        let cc = if attempts % 2 == 0 {
            codes[(attempts / 2) % codes.len()]
        } else {
            let mut n = rng.random_range(0..total);
            let mut chosen = codes[0];
            for (cc, c) in &countries {
                let here = c.seen[0] + c.seen[1];
                if n < here {
                    chosen = cc;
                    break;
                }
                n -= here;
            }
            chosen
        };
        let c = &countries[cc];
        let family =
            if !c.sample[1].is_empty() && (c.sample[0].is_empty() || rng.random_bool(V6_SHARE)) {
                1
            } else {
                0
            };
        let nets = &c.sample[family];
        let net = nets[rng.random_range(0..nets.len())];
        let ip = address_in(net, &mut rng);
        let (location, outcome) = geo.lookup(ip);
        let in_country = location
            .and_then(|l| l.country)
            .is_some_and(|found| found.as_str() == cc.as_str());
        if outcome == LookupOutcome::Found && in_country && unique.insert(ip) {
            picked.push((ip, cc.as_str()));
        }
    }

    let mut text = String::with_capacity(picked.len() * 24);
    for (ip, cc) in &picked {
        text.push_str(&format!("{ip} {cc}\n"));
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
    let in_list: HashSet<&str> = picked.iter().map(|(_, cc)| *cc).collect();
    let v6 = picked.iter().filter(|(ip, _)| ip.is_ipv6()).count();
    println!(
        "{} addresses ({} IPv6) from {} countries (of {} in the database) -> {}",
        picked.len(),
        v6,
        in_list.len(),
        countries.len(),
        out.display()
    );
    Ok(())
}

/// Walks every network with a record that names a country, and keeps up to
/// [`SAMPLE`] of them per country and family (reservoir sampling).
fn sample_networks(db: &PathBuf, rng: &mut SmallRng) -> anyhow::Result<BTreeMap<String, Country>> {
    let reader = Reader::open_readfile(db).with_context(|| format!("opening {}", db.display()))?;
    let path = [PathElement::Key("country"), PathElement::Key("iso_code")];
    // Many networks share one record: decode each record once.
    let mut by_record: HashMap<usize, Option<String>> = HashMap::new();
    let mut countries: BTreeMap<String, Country> = BTreeMap::new();
    for item in reader.networks(WithinOptions::default())? {
        let item = item?;
        let Some(offset) = item.offset() else {
            continue;
        };
        let cc = match by_record.get(&offset) {
            Some(cc) => cc.clone(),
            None => {
                let cc: Option<String> = item.decode_path(&path)?;
                by_record.insert(offset, cc.clone());
                cc
            }
        };
        let Some(cc) = cc else { continue };
        let net = item.network()?;
        let family = usize::from(net.network().is_ipv6());
        let c = countries.entry(cc).or_default();
        c.seen[family] += 1;
        let entry = (net.network(), net.prefix());
        if c.sample[family].len() < SAMPLE {
            c.sample[family].push(entry);
        } else {
            let j = rng.random_range(0..c.seen[family]);
            if j < SAMPLE {
                c.sample[family][j] = entry;
            }
        }
    }
    Ok(countries)
}

/// A random address inside a network, avoiding its first and last address
/// where the network has room for others.
fn address_in((base, prefix): Net, rng: &mut SmallRng) -> IpAddr {
    match base {
        IpAddr::V4(v4) => {
            let host_bits = 32 - u32::from(prefix.min(32));
            let size = 1u64 << host_bits;
            let offset = if size > 2 {
                rng.random_range(1..size - 1)
            } else {
                0
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(offset as u32)))
        }
        IpAddr::V6(v6) => {
            let host_bits = 128 - u32::from(prefix.min(128));
            let offset: u128 = match host_bits {
                0 => 0,
                128 => rng.random(),
                n => rng.random::<u128>() & ((1u128 << n) - 1),
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) | offset))
        }
    }
}
