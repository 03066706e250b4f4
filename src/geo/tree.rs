//! The search-tree walk of the request path: from an address to the offset of
//! its record in the data section, or none.
//!
//! It answers exactly what `maxminddb::Reader::lookup(ip)?.offset()` answers
//! (the offset keys the records decoded at load, see `source.rs`), with the
//! same kinds of error, and nothing more: no `LookupResult`, no prefix
//! length. The record size is matched once per walk, each node is one 8-byte
//! load with no branch on the address bit, and the per-file constants (node
//! count, the data section's length) are computed once at load.
//!
//! A walk is a chain of dependent loads, one per address bit until a record,
//! so its time is the length of that chain. The first [`TABLE_BITS`] levels
//! are therefore walked once at load, for every pattern of those bits, into
//! a table per family (256 KiB each): a lookup starts with one load from it
//! and walks only the rest.
//!
//! It reads only a tree that `maxminddb` has already accepted; metadata,
//! records, verification and `networks()` stay with `maxminddb`.

use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;
use maxminddb::{MaxMindDbError, Metadata};

/// The zero bytes between the search tree and the data section.
const SEPARATOR: usize = 16;
/// The marker before the metadata; its last occurrence ends the data section.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
/// Bits walked from the root of an IPv6 tree to where IPv4 addresses start
/// (`::a.b.c.d`).
const IPV4_IN_IPV6_DEPTH: u32 = 96;
/// Levels replaced by a table lookup. With 16, the table (2^16 records of 4
/// bytes) is smaller than the first 16 levels of a full tree (7 bytes a node
/// in GeoLite2), which a walk would otherwise read, and it halves the time
/// of a random IPv4 lookup there; 20 saves a little more (about a quarter of
/// what remains of a random IPv4 lookup) for 16 times the memory.
const TABLE_BITS: u32 = 16;
const TABLE_LEN: usize = 1 << TABLE_BITS;

/// For each value of an address's first [`TABLE_BITS`] bits, where the walk
/// is after them: a node to go on from, or the record it met on the way.
/// Records are at most 32 bits.
type Table = Box<[u32; TABLE_LEN]>;

/// The search tree of one file, and what a walk needs to know about it.
pub(crate) struct SearchTree {
    nodes: Nodes,
    /// IPv4 addresses, from where they start: the root of an IPv4 tree, or
    /// where 96 zero bits lead in an IPv6 tree.
    v4_table: Table,
    /// IPv6 addresses, from the root; `None` in an IPv4 tree.
    v6_table: Option<Table>,
    /// Data offsets at or past this are corrupt.
    data_section_len: usize,
}

/// The nodes themselves.
struct Nodes {
    /// The tree and the separator after it: a slice of the file's bytes that
    /// shares the buffer the `Reader` holds, not a copy. The separator is why
    /// an 8-byte read at any node stays inside it (nodes are 6 to 8 bytes).
    bytes: Bytes,
    record_size: RecordSize,
    count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordSize {
    Bits24,
    Bits28,
    Bits32,
}

/// By hand: the derived form would print the whole tree and both tables.
impl fmt::Debug for SearchTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchTree")
            .field("record_size", &self.nodes.record_size)
            .field("node_count", &self.nodes.count)
            .field("ipv6", &self.v6_table.is_some())
            .field("data_section_len", &self.data_section_len)
            .finish_non_exhaustive()
    }
}

impl SearchTree {
    /// The tree of `bytes`, a whole file that `Reader::from_source` accepted
    /// with `meta`. The errors only guard against a caller that did not.
    pub fn new(bytes: &Bytes, meta: &Metadata) -> Result<Self, MaxMindDbError> {
        let record_size = match meta.record_size {
            24 => RecordSize::Bits24,
            28 => RecordSize::Bits28,
            32 => RecordSize::Bits32,
            other => {
                return Err(MaxMindDbError::invalid_database(format!(
                    "record size {other} is not 24, 28 or 32"
                )))
            }
        };
        let count = meta.node_count as usize;
        let tree_end = count
            .checked_mul(usize::from(meta.record_size) / 4)
            .and_then(|len| len.checked_add(SEPARATOR));
        let data_end = bytes
            .windows(METADATA_MARKER.len())
            .rposition(|w| w == METADATA_MARKER);
        let (tree_end, data_end) = match (tree_end, data_end) {
            (Some(t), Some(d)) if t <= d => (t, d),
            _ => {
                return Err(MaxMindDbError::invalid_database(
                    "the search tree does not fit before the metadata",
                ))
            }
        };
        let nodes = Nodes {
            bytes: bytes.slice(..tree_end),
            record_size,
            count,
        };
        let (v6_table, ipv4_start) = if meta.ip_version == 6 {
            let ipv4_start = nodes.walk(0, Bits(0), IPV4_IN_IPV6_DEPTH)?;
            (Some(nodes.table(0)?), ipv4_start)
        } else {
            (None, 0)
        };
        Ok(SearchTree {
            v4_table: nodes.table(ipv4_start)?,
            v6_table,
            nodes,
            data_section_len: data_end - tree_end,
        })
    }

    /// The data-section offset of `ip`'s record, `None` when the file has
    /// none, as `Reader::lookup(ip)?.offset()` answers. IPv4 addresses are
    /// walked from where IPv4 starts; IPv4-mapped IPv6 addresses are walked
    /// as IPv6, as `Reader::lookup` does.
    #[inline]
    pub fn offset(&self, ip: IpAddr) -> Result<Option<usize>, MaxMindDbError> {
        let record = match ip {
            IpAddr::V4(v4) => {
                let bits = v4.to_bits();
                let node = self.v4_table[(bits >> (32 - TABLE_BITS)) as usize];
                let rest = u128::from(bits) << (96 + TABLE_BITS);
                self.nodes.walk(node as usize, Bits(rest), 32 - TABLE_BITS)
            }
            IpAddr::V6(v6) => {
                let Some(table) = &self.v6_table else {
                    return Err(MaxMindDbError::invalid_input(
                        "an IPv6 address in an IPv4-only database",
                    ));
                };
                let bits = v6.to_bits();
                let node = table[(bits >> (128 - TABLE_BITS)) as usize];
                let rest = bits << TABLE_BITS;
                self.nodes.walk(node as usize, Bits(rest), 128 - TABLE_BITS)
            }
        }?;
        self.resolve(record)
    }

    /// What the record where a walk ended means. `node_count` itself is the
    /// spec's "no data"; below it, the address ran out on a node, which
    /// `maxminddb` also reports as no data. Above it, a pointer into the data
    /// section, past the separator.
    #[inline]
    fn resolve(&self, record: usize) -> Result<Option<usize>, MaxMindDbError> {
        if record <= self.nodes.count {
            return Ok(None);
        }
        match (record - self.nodes.count).checked_sub(SEPARATOR) {
            Some(offset) if offset < self.data_section_len => Ok(Some(offset)),
            _ => Err(MaxMindDbError::invalid_database(format!(
                "search tree record {record} points outside the data section"
            ))),
        }
    }
}

impl Nodes {
    /// Walks `depth` bits of `ip` from `start`, stopping early at a record
    /// that is not a node; returns that record, or the node where the bits
    /// ran out. The match on the record size is outside the loop.
    #[inline]
    fn walk(&self, start: usize, ip: Bits, depth: u32) -> Result<usize, MaxMindDbError> {
        let tree = &self.bytes[..];
        match self.record_size {
            RecordSize::Bits24 => walk::<Record24>(tree, self.count, start, ip, depth),
            RecordSize::Bits28 => walk::<Record28>(tree, self.count, start, ip, depth),
            RecordSize::Bits32 => walk::<Record32>(tree, self.count, start, ip, depth),
        }
    }

    /// The table of the [`TABLE_BITS`] levels below `start`.
    fn table(&self, start: usize) -> Result<Table, MaxMindDbError> {
        let tree = &self.bytes[..];
        match self.record_size {
            RecordSize::Bits24 => table::<Record24>(tree, self.count, start),
            RecordSize::Bits28 => table::<Record28>(tree, self.count, start),
            RecordSize::Bits32 => table::<Record32>(tree, self.count, start),
        }
    }
}

/// The address bits still to walk, the next one at the top (an IPv4
/// address's shifted up), so that one walk serves both families.
#[derive(Debug, Clone, Copy)]
struct Bits(u128);

#[inline(always)]
fn walk<R: Record>(
    tree: &[u8],
    node_count: usize,
    start: usize,
    ip: Bits,
    depth: u32,
) -> Result<usize, MaxMindDbError> {
    let mut node = start;
    let mut bits = ip.0;
    for _ in 0..depth {
        if node >= node_count {
            break;
        }
        let right = (bits >> 127) as usize;
        bits <<= 1;
        node = R::child(read::<R>(tree, node)?, right) as usize;
    }
    Ok(node)
}

/// Level by level, where every pattern of [`TABLE_BITS`] bits leads from
/// `start`, as [`walk`] would go: a record met early fills all the entries
/// under it.
fn table<R: Record>(tree: &[u8], node_count: usize, start: usize) -> Result<Table, MaxMindDbError> {
    let invalid = || MaxMindDbError::invalid_database("search tree table out of range");
    let mut level = vec![u32::try_from(start).map_err(|_| invalid())?];
    for _ in 0..TABLE_BITS {
        let mut next = Vec::with_capacity(level.len() * 2);
        for &node in &level {
            if node as usize >= node_count {
                next.push(node);
                next.push(node);
            } else {
                let word = read::<R>(tree, node as usize)?;
                next.push(R::child(word, 0));
                next.push(R::child(word, 1));
            }
        }
        level = next;
    }
    level.into_boxed_slice().try_into().map_err(|_| invalid())
}

/// The 8 bytes at `node`, which is below the node count: so they lie in the
/// tree and its separator, and `get` cannot fail on a tree that
/// `SearchTree::new` sliced; but a failure is an error, not a panic.
#[inline(always)]
fn read<R: Record>(tree: &[u8], node: usize) -> Result<u64, MaxMindDbError> {
    match tree
        .get(node * R::NODE_BYTES..)
        .and_then(|s| s.first_chunk::<8>())
    {
        Some(word) => Ok(u64::from_be_bytes(*word)),
        None => Err(MaxMindDbError::invalid_database(
            "search tree node past its end",
        )),
    }
}

/// One record size: the bytes of a node, and its two records read from the
/// 8 bytes that start at it (big-endian). Both children are computed and one
/// chosen, so the random address bit costs no branch. The masks leave at
/// most 32 bits, hence `as u32`.
trait Record {
    const NODE_BYTES: usize;
    fn child(word: u64, right: usize) -> u32;
}

/// `LLL RRR`: three bytes each.
struct Record24;

impl Record for Record24 {
    const NODE_BYTES: usize = 6;
    #[inline(always)]
    fn child(word: u64, right: usize) -> u32 {
        ((word >> (40 - 24 * right)) & 0x00ff_ffff) as u32
    }
}

/// `LLL M RRR`: the middle byte's high nibble is the top of the left
/// record, its low nibble the top of the right one.
struct Record28;

impl Record for Record28 {
    const NODE_BYTES: usize = 7;
    #[inline(always)]
    fn child(word: u64, right: usize) -> u32 {
        let left = ((word >> 40) & 0x00ff_ffff) | ((word >> 12) & 0x0f00_0000);
        let right_child = (word >> 8) & 0x0fff_ffff;
        (if right == 0 { left } else { right_child }) as u32
    }
}

/// `LLLL RRRR`.
struct Record32;

impl Record for Record32 {
    const NODE_BYTES: usize = 8;
    #[inline(always)]
    fn child(word: u64, right: usize) -> u32 {
        (word >> (32 - 32 * right)) as u32
    }
}

#[cfg(test)]
mod tests;
