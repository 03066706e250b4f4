//! The search-tree walk of the request path: from an address to the offset of
//! its record in the data section, or none.
//!
//! It answers exactly what `maxminddb::Reader::lookup(ip)?.offset()` answers
//! (the offset keys the records decoded at load, see `source.rs`), with the
//! same kinds of error, and nothing more: no `LookupResult`, no prefix
//! length. The record size is matched once per walk, each node is one 8-byte
//! load with no branch on the address bit, and the per-file constants (node
//! count, the IPv4 start node, the data section's length) are computed once
//! at load.
//!
//! It reads only a tree that `maxminddb` has already accepted; metadata,
//! records, verification and `networks()` stay with `maxminddb`.

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

/// The search tree of one file, and what a walk needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct SearchTree {
    /// The tree and the separator after it: a slice of the file's bytes that
    /// shares the buffer the `Reader` holds, not a copy. The separator is why
    /// an 8-byte read at any node stays inside it (nodes are 6 to 8 bytes).
    tree: Bytes,
    record_size: RecordSize,
    node_count: usize,
    /// The node where IPv4 addresses start: 0 in an IPv4 tree, else the node
    /// reached by 96 zero bits (or the record met on the way).
    ipv4_start: usize,
    ipv6: bool,
    /// Data offsets at or past this are corrupt.
    data_section_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordSize {
    Bits24,
    Bits28,
    Bits32,
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
        let node_count = meta.node_count as usize;
        let tree_end = node_count
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
        let mut tree = SearchTree {
            tree: bytes.slice(..tree_end),
            record_size,
            node_count,
            ipv4_start: 0,
            ipv6: meta.ip_version == 6,
            data_section_len: data_end - tree_end,
        };
        if tree.ipv6 {
            tree.ipv4_start = tree.walk(0, Bits(0), IPV4_IN_IPV6_DEPTH)?;
        }
        Ok(tree)
    }

    /// The data-section offset of `ip`'s record, `None` when the file has
    /// none, as `Reader::lookup(ip)?.offset()` answers. IPv4 addresses are
    /// walked from the IPv4 start node; IPv4-mapped IPv6 addresses are
    /// walked as IPv6, as `Reader::lookup` does.
    #[inline]
    pub fn offset(&self, ip: IpAddr) -> Result<Option<usize>, MaxMindDbError> {
        let node = match ip {
            IpAddr::V4(v4) => self.walk(self.ipv4_start, Bits(u128::from(v4.to_bits()) << 96), 32),
            IpAddr::V6(v6) if self.ipv6 => self.walk(0, Bits(v6.to_bits()), 128),
            IpAddr::V6(_) => {
                return Err(MaxMindDbError::invalid_input(
                    "an IPv6 address in an IPv4-only database",
                ))
            }
        }?;
        self.resolve(node)
    }

    /// Walks `depth` bits of `ip` from `start`, stopping early at a record
    /// that is not a node; returns that record, or the node where the bits
    /// ran out. The match on the record size is outside the loop.
    #[inline]
    fn walk(&self, start: usize, ip: Bits, depth: u32) -> Result<usize, MaxMindDbError> {
        let tree = &self.tree[..];
        match self.record_size {
            RecordSize::Bits24 => walk::<Record24>(tree, self.node_count, start, ip, depth),
            RecordSize::Bits28 => walk::<Record28>(tree, self.node_count, start, ip, depth),
            RecordSize::Bits32 => walk::<Record32>(tree, self.node_count, start, ip, depth),
        }
    }

    /// What the record where a walk ended means. `node_count` itself is the
    /// spec's "no data"; below it, the address ran out on a node, which
    /// `maxminddb` also reports as no data. Above it, a pointer into the data
    /// section, past the separator.
    #[inline]
    fn resolve(&self, record: usize) -> Result<Option<usize>, MaxMindDbError> {
        if record <= self.node_count {
            return Ok(None);
        }
        match (record - self.node_count).checked_sub(SEPARATOR) {
            Some(offset) if offset < self.data_section_len => Ok(Some(offset)),
            _ => Err(MaxMindDbError::invalid_database(format!(
                "search tree record {record} points outside the data section"
            ))),
        }
    }
}

/// An address's bits, the first at the top: IPv4 shifted up by 96, so one
/// walk serves both families and the IPv4 walk is the last 32 levels.
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
        // `node < node_count`, so the node and the 8 bytes read from it lie
        // in the tree and its separator: `get` cannot fail on a tree that
        // `SearchTree::new` sliced, but a failure is an error, not a panic.
        let Some(word) = tree
            .get(node * R::NODE_BYTES..)
            .and_then(|s| s.first_chunk::<8>())
        else {
            return Err(MaxMindDbError::invalid_database(
                "search tree node past its end",
            ));
        };
        node = R::child(u64::from_be_bytes(*word), right);
    }
    Ok(node)
}

/// One record size: the bytes of a node, and its two records read from the
/// 8 bytes that start at it (big-endian). Both children are computed and one
/// chosen, so the random address bit costs no branch.
trait Record {
    const NODE_BYTES: usize;
    fn child(word: u64, right: usize) -> usize;
}

/// `LLL RRR`: three bytes each.
struct Record24;

impl Record for Record24 {
    const NODE_BYTES: usize = 6;
    #[inline(always)]
    fn child(word: u64, right: usize) -> usize {
        ((word >> (40 - 24 * right)) & 0x00ff_ffff) as usize
    }
}

/// `LLL M RRR`: the middle byte's high nibble is the top of the left
/// record, its low nibble the top of the right one.
struct Record28;

impl Record for Record28 {
    const NODE_BYTES: usize = 7;
    #[inline(always)]
    fn child(word: u64, right: usize) -> usize {
        let left = ((word >> 40) & 0x00ff_ffff) | ((word >> 12) & 0x0f00_0000);
        let right_child = (word >> 8) & 0x0fff_ffff;
        (if right == 0 { left } else { right_child }) as usize
    }
}

/// `LLLL RRRR`.
struct Record32;

impl Record for Record32 {
    const NODE_BYTES: usize = 8;
    #[inline(always)]
    fn child(word: u64, right: usize) -> usize {
        ((word >> (32 - 32 * right)) & 0xffff_ffff) as usize
    }
}

#[cfg(test)]
mod tests;
