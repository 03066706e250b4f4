//! Scans: listing everything a mirror has, to build its [`FileSet`].
//!
//! Two sources: `rsync --list-only -r` against the mirror's rsync module
//! (paths with sizes), and the autoindex pages of its HTTP server (paths
//! only), walked breadth-first with a page and time budget. This module owns
//! the parsers, the bounded runs of both, and the matching of a listing
//! against an index. It must not decide when to scan or touch the snapshot.

use std::collections::{HashSet, VecDeque};
use std::process::Stdio;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use url::Url;

use super::{ContentIndex, FileSet};
use crate::health::within_base;

/// The most rsync output read: a listing of a very large archive (a few
/// million files at ~70 bytes a line) fits; a runaway one is cut off.
pub const MAX_LISTING_BYTES: usize = 512 * 1024 * 1024;

/// The most of one autoindex page read.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// The most of rsync's error output kept for the message.
const MAX_STDERR_BYTES: usize = 2048;

/// Why a scan failed: a closed set, usable as a metric label.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Only `rsync://` URLs are scanned with rsync (anything else could be
    /// read by rsync as an option or a local path).
    #[error("not an rsync:// URL: {0}")]
    NotRsyncUrl(String),
    /// The `rsync` binary could not be started.
    #[error("cannot run rsync: {0}")]
    Spawn(#[source] std::io::Error),
    /// Reading rsync's output failed.
    #[error("reading rsync's output failed: {0}")]
    Io(#[source] std::io::Error),
    /// rsync exited with an error.
    #[error("rsync exited with {}: {stderr}", code.map_or("a signal".to_string(), |c| format!("code {c}")))]
    Exit { code: Option<i32>, stderr: String },
    /// The scan did not finish in time.
    #[error("scan timed out")]
    Timeout,
    /// The listing is larger than the limit.
    #[error("listing larger than {0} bytes")]
    TooLarge(usize),
    /// The HTTP index could not be fetched.
    #[error("fetching the index page failed: {0}")]
    Http(String),
}

impl ScanError {
    /// A bounded label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotRsyncUrl(_) => "not_rsync_url",
            Self::Spawn(_) => "spawn",
            Self::Io(_) => "io",
            Self::Exit { .. } => "exit",
            Self::Timeout => "timeout",
            Self::TooLarge(_) => "too_large",
            Self::Http(_) => "http",
        }
    }
}

/// Regular files and their sizes from `rsync --list-only -r` output.
///
/// Lines look like `-rw-r--r--      1,234,567 2026/11/29 10:00:01 path/to/file`;
/// directories, symlinks, devices and anything else (a MOTD) are skipped.
/// rsync's `\#ooo` escapes of unusual bytes are decoded.
pub fn parse_rsync_list(text: &str) -> Vec<(String, u64)> {
    text.lines().filter_map(parse_rsync_line).collect()
}

fn parse_rsync_line(line: &str) -> Option<(String, u64)> {
    let (mode, rest) = next_field(line)?;
    if mode.len() != 10 || !mode.starts_with('-') {
        return None;
    }
    let (size, rest) = next_field(rest)?;
    let (date, rest) = next_field(rest)?;
    let (time, path) = next_field(rest)?;
    let size: String = size.chars().filter(|c| !matches!(c, ',' | '.')).collect();
    let size = size.parse().ok()?;
    if date.len() != 10 || date.as_bytes()[4] != b'/' || time.len() != 8 {
        return None;
    }
    let path = unescape_rsync(path.strip_prefix("./").unwrap_or(path))?;
    if path.is_empty() || path == "." {
        return None;
    }
    Some((path, size))
}

/// The first whitespace-separated field and the rest after its spaces.
fn next_field(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace)?;
    Some((&s[..end], s[end..].trim_start()))
}

/// Decodes rsync's `\#ooo` (three octal digits) escapes.
fn unescape_rsync(s: &str) -> Option<String> {
    if !s.contains("\\#") {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 2..i + 5)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], b.get(i + 1), octal) {
            (b'\\', Some(b'#'), Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).ok()?);
                i += 5;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Lists `url` (`rsync://host/module/`) recursively with the `rsync` binary,
/// killed after `timeout` or past [`MAX_LISTING_BYTES`] of output.
pub async fn rsync_scan(url: &str, timeout: Duration) -> Result<Vec<(String, u64)>, ScanError> {
    if !url.starts_with("rsync://") {
        return Err(ScanError::NotRsyncUrl(url.chars().take(200).collect()));
    }
    let mut child = Command::new("rsync")
        .args(["--list-only", "-r", "--no-motd"])
        // rsync's own I/O timeout, so that it also gives up on its own.
        .arg(format!("--timeout={}", timeout.as_secs().max(1)))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timed-out or oversized scan must not leave rsync behind.
        .kill_on_drop(true)
        .spawn()
        .map_err(ScanError::Spawn)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ScanError::Io(std::io::Error::other(
            "rsync's output not captured",
        )));
    };
    let run = async {
        let (out, err) = tokio::join!(
            read_limited(stdout, MAX_LISTING_BYTES),
            read_limited(stderr, MAX_STDERR_BYTES),
        );
        let (out, over) = out.map_err(ScanError::Io)?;
        if over {
            return Err(ScanError::TooLarge(MAX_LISTING_BYTES));
        }
        let status = child.wait().await.map_err(ScanError::Io)?;
        // rsync's complaint, cut short if long; a failure to read it loses only the detail.
        let err = err.map(|(e, _)| e).unwrap_or_default();
        Ok::<_, ScanError>((out, err, status))
    };
    let (out, err, status) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ScanError::Timeout)??;
    if !status.success() {
        return Err(ScanError::Exit {
            code: status.code(),
            stderr: String::from_utf8_lossy(&err).trim().to_owned(),
        });
    }
    Ok(parse_rsync_list(&String::from_utf8_lossy(&out)))
}

/// Reads `r` up to `limit` bytes; true as well when there was more (the
/// rest is not read: for stdout, dropping the pipe ends rsync).
async fn read_limited(r: impl AsyncRead + Unpin, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut buf).await?;
    let over = buf.len() > limit;
    buf.truncate(limit);
    Ok((buf, over))
}

/// The relative links of an Apache or nginx autoindex page, as written
/// (percent-encoded; directories end in `/`): parent, absolute, query and
/// fragment links are skipped.
pub fn parse_http_index(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("href=") {
        let start = at + found + "href=".len();
        at = start;
        let rest = &html[start..];
        let (quote, body) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => (q, &rest[1..]),
            _ => continue,
        };
        let Some(end) = body.find(quote) else {
            break;
        };
        let link = body[..end].replace("&amp;", "&");
        at = start + 1 + end;
        if keep_link(&link) {
            links.push(link);
        }
    }
    links
}

fn keep_link(link: &str) -> bool {
    let scheme = link.find(':').is_some_and(|c| !link[..c].contains('/'));
    // Dot files are kept (`.treeinfo` is a real file); only `.` and `..` go.
    let dots = matches!(link, "." | "./" | ".." | "../") || link.starts_with("../");
    !(link.is_empty()
        || dots
        || link.starts_with(['/', '?', '#'])
        || link.contains(['?', '#'])
        || scheme)
}

/// What an HTTP scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpListing {
    /// Files, as decoded paths relative to the base.
    pub files: Vec<String>,
    /// False when the page budget, the deadline or a failed page cut the walk short.
    pub complete: bool,
}

/// Walks the autoindex pages under `base` breadth-first: at most `max_pages`
/// pages, until `deadline`. Only links under `base` are followed.
pub async fn http_scan(
    client: &reqwest::Client,
    base: &Url,
    max_pages: usize,
    deadline: Duration,
) -> Result<HttpListing, ScanError> {
    let mut listing = HttpListing::default();
    let walk = walk_http(client, base, max_pages, &mut listing);
    match tokio::time::timeout(deadline, walk).await {
        Ok(Ok(complete)) => listing.complete = complete,
        Ok(Err(e)) => return Err(e),
        // What was found before the deadline is still true.
        Err(_) => listing.complete = false,
    }
    Ok(listing)
}

/// The walk; true when every directory was read.
async fn walk_http(
    client: &reqwest::Client,
    base: &Url,
    max_pages: usize,
    listing: &mut HttpListing,
) -> Result<bool, ScanError> {
    let mut queue = VecDeque::from([base.clone()]);
    let mut seen: HashSet<Url> = HashSet::from([base.clone()]);
    let mut complete = true;
    let mut pages = 0;
    while let Some(dir) = queue.pop_front() {
        if pages == max_pages {
            return Ok(false);
        }
        pages += 1;
        let page = match fetch_page(client, &dir).await {
            Ok(page) => page,
            // The first page failing means no scan at all; a later one only a partial scan.
            Err(e) if pages == 1 => return Err(e),
            Err(_) => {
                complete = false;
                continue;
            }
        };
        for link in parse_http_index(&page) {
            let Ok(url) = dir.join(&link) else { continue };
            if !within_base(&url, base) || !seen.insert(url.clone()) {
                continue;
            }
            if link.ends_with('/') {
                queue.push_back(url);
            } else if let Some(path) = relative_path(base, &url) {
                listing.files.push(path);
            }
        }
    }
    Ok(complete)
}

async fn fetch_page(client: &reqwest::Client, url: &Url) -> Result<String, ScanError> {
    let http = |e: reqwest::Error| ScanError::Http(e.to_string());
    let mut response = client.get(url.clone()).send().await.map_err(http)?;
    if !response.status().is_success() {
        return Err(ScanError::Http(format!(
            "{url}: HTTP {}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(ScanError::TooLarge(MAX_PAGE_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `url`'s path under `base`, percent-decoded; `None` if not valid UTF-8.
fn relative_path(base: &Url, url: &Url) -> Option<String> {
    let base_path = base.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(base_path)?.trim_start_matches('/');
    percent_decode_str(rest)
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}

/// The files of `index` that `listing` shows with the index's size.
pub fn to_fileset(index: &ContentIndex, listing: &[(String, u64)]) -> FileSet {
    let mut set = FileSet::with_capacity(index.len());
    for (path, size) in listing {
        if let Some((id, info)) = index.lookup(path) {
            if info.size == *size {
                set.insert(id);
            }
        }
    }
    set
}

/// The files of `index` that `paths` names, sizes unknown (an HTTP scan).
pub fn paths_to_fileset(index: &ContentIndex, paths: &[String]) -> FileSet {
    let mut set = FileSet::with_capacity(index.len());
    for path in paths {
        if let Some((id, _)) = index.lookup(path) {
            set.insert(id);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSYNC: &str = "\
Welcome to the mirror! Please be nice.

drwxr-xr-x          4,096 2026/11/29 10:00:01 .
-rw-r--r--      1,234,567 2026/11/29 10:00:01 big.iso
lrwxrwxrwx              7 2026/11/29 10:00:01 link -> big.iso
drwxr-xr-x          4,096 2026/11/29 10:00:01 sub dir
-rw-r--r--              3 2026/11/29 10:00:01 sub dir/a b.txt
-rw-rw-r--     12.345.678 2026/11/29 10:00:01 dots/locale.iso
-rw-r--r--             42 2026/11/29 10:00:01 odd/caf\\#303\\#251.txt
-rw-r--r--          1234567 2026/11/29 10:00:01 plain/no-separators
crw-r--r--              0 2026/11/29 10:00:01 dev/null
-rw-r--r--          oops! 2026/11/29 10:00:01 broken
";

    #[test]
    fn rsync_list_keeps_regular_files_with_sizes() {
        let got = parse_rsync_list(RSYNC);
        let want: Vec<(String, u64)> = [
            ("big.iso", 1_234_567),
            ("sub dir/a b.txt", 3),
            ("dots/locale.iso", 12_345_678),
            ("odd/café.txt", 42),
            ("plain/no-separators", 1_234_567),
        ]
        .iter()
        .map(|(p, s)| (p.to_string(), *s))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rsync_escapes_that_are_not_utf8_drop_the_line() {
        assert_eq!(unescape_rsync("a\\#377b"), None);
        assert_eq!(unescape_rsync("a\\#12"), Some("a\\#12".into()));
    }

    const APACHE: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of /debian/pool</title></head><body>
<h1>Index of /debian/pool</h1>
<table>
<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td><a href="/debian/">Parent Directory</a></td></tr>
<tr><td><a href="contrib/">contrib/</a></td><td>2026-11-29 10:00</td></tr>
<tr><td><a href="main/">main/</a></td><td>2026-11-29 10:00</td></tr>
<tr><td><a HREF="a%20b.deb">a b.deb</a></td><td>2026-11-29 10:00</td><td>1.2M</td></tr>
<tr><td><a href="x&amp;y.txt">x&amp;y.txt</a></td></tr>
<tr><td><a href="https://elsewhere.example/">elsewhere</a></td></tr>
<tr><td><a href="mailto:webmaster@example.org">mail</a></td></tr>
</table></body></html>"#;

    const NGINX: &str = r#"<html>
<head><title>Index of /pub/releases/</title></head>
<body>
<h1>Index of /pub/releases/</h1><hr><pre><a href="../">../</a>
<a href="1.0/">1.0/</a>
<a href=".treeinfo">.treeinfo</a>
<a href="./">.</a>                                               29-Nov-2026 10:00       -
<a href='SHA256SUMS'>SHA256SUMS</a>                                         29-Nov-2026 10:00     123
<a href="demo-1.0.iso">demo-1.0.iso</a>                                       29-Nov-2026 10:00  262144
</pre><hr></body>
</html>"#;

    #[test]
    fn apache_index_links() {
        assert_eq!(
            parse_http_index(APACHE),
            ["contrib/", "main/", "a%20b.deb", "x&y.txt"]
        );
    }

    #[test]
    fn nginx_index_links() {
        assert_eq!(
            parse_http_index(NGINX),
            ["1.0/", ".treeinfo", "SHA256SUMS", "demo-1.0.iso"]
        );
    }

    #[test]
    fn broken_html_does_not_panic() {
        assert!(parse_http_index("<a href=\"unterminated").is_empty());
        assert!(parse_http_index("<a href=noquotes>").is_empty());
        assert!(parse_http_index("href=").is_empty());
        assert_eq!(parse_http_index("<a href=\"ü/\">"), ["ü/"]);
    }

    #[test]
    fn relative_paths_are_decoded_and_stay_under_the_base() {
        let base = Url::parse("http://m.example/pub/").unwrap();
        let u = |s| Url::parse(s).unwrap();
        assert_eq!(
            relative_path(&base, &u("http://m.example/pub/a/b%20c.iso")).as_deref(),
            Some("a/b c.iso")
        );
        assert_eq!(relative_path(&base, &u("http://m.example/other/x")), None);
    }

    #[test]
    fn filesets_from_a_listing_match_what_the_index_returns() {
        // The index is still a stub in this tree (lookup always misses): this
        // only shows that nothing unknown gets in. The matching itself is
        // tested in tests/freshness.rs once the index finds files.
        let index = ContentIndex::empty();
        let set = to_fileset(&index, &[("a".into(), 1)]);
        assert!(set.is_empty());
        assert!(paths_to_fileset(&index, &["a".into()]).is_empty());
    }

    #[tokio::test]
    async fn output_is_cut_at_the_limit() {
        let (got, over) = read_limited(&b"12345"[..], 5).await.unwrap();
        assert_eq!((got.as_slice(), over), (&b"12345"[..], false));
        let (got, over) = read_limited(&b"123456"[..], 5).await.unwrap();
        assert_eq!((got.as_slice(), over), (&b"12345"[..], true));
    }

    #[tokio::test]
    async fn only_rsync_urls_are_handed_to_rsync() {
        for url in ["--help", "/etc", "http://m.example/", "host::module"] {
            let err = rsync_scan(url, Duration::from_secs(1)).await.unwrap_err();
            assert_eq!(err.as_str(), "not_rsync_url", "{url}");
        }
    }
}
