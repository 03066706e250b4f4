//! Which answer a request wants: a redirect (the default), or one of the
//! formats of this module, from the query string, a `.meta4` suffix or the
//! `Accept` header, in that order of precedence.

/// The kinds of answer one URL can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The file itself: a redirect to the best mirror.
    Redirect,
    /// `?meta4`, `<file>.meta4`, `Accept: application/metalink4+xml`.
    Metalink,
    /// `?json`, `Accept: application/json`.
    Json,
    /// `?mirrorlist`: the page for people.
    MirrorList,
    /// `?sha256`: the line `sha256sum -c` reads.
    Sha256,
    /// `?aptmirrors`: the list apt's `mirror+http` method reads.
    AptList,
}

const METALINK_TYPE: &str = "application/metalink4+xml";
const JSON_TYPE: &str = "application/json";

/// What the request wants, and the path of the file it is about.
///
/// `path` is the request's raw path; the returned path is the same, except
/// for `<file>.meta4`, where it is `<file>` (the Metalink of a file at a URL
/// of its own, for clients that name what they save after the URL). A query
/// key counts with or without a value (`?json`, `?json=1`); the first known
/// key wins. Without one, `Accept` decides: JSON when it names
/// `application/json` with `q` > 0 and at least the `q` of everything else;
/// Metalink only when it gives `application/metalink4+xml` a `q` strictly
/// above that of anything else it accepts, wildcards included. Download
/// managers such as aria2c list the Metalink type beside `*/*` at the same
/// weight: they take the file itself as gladly, and the redirect gives them
/// every mirror (`Link`) and the hash (`Digest`) anyway. `*/*` alone is the
/// redirect.
pub fn wanted<'a>(path: &'a str, query: Option<&str>, accept: Option<&str>) -> (Wanted, &'a str) {
    if let Some(w) = query.and_then(from_query) {
        return (w, path);
    }
    if let Some(file) = path.strip_suffix(".meta4") {
        // `/.meta4` or `/dir/.meta4` names no file: taken as it stands.
        if !file.is_empty() && !file.ends_with('/') {
            return (Wanted::Metalink, file);
        }
    }
    (accept.map_or(Wanted::Redirect, from_accept), path)
}

fn from_query(query: &str) -> Option<Wanted> {
    query.split('&').find_map(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        match key {
            "meta4" => Some(Wanted::Metalink),
            "json" => Some(Wanted::Json),
            "mirrorlist" => Some(Wanted::MirrorList),
            "sha256" => Some(Wanted::Sha256),
            "aptmirrors" => Some(Wanted::AptList),
            _ => None,
        }
    })
}

/// Content negotiation between the redirect and the two machine formats.
fn from_accept(accept: &str) -> Wanted {
    let mut best: Option<(Wanted, f32)> = None;
    // The highest q given to anything that is not one of the two formats,
    // wildcards included: what the redirect (some other type) could get.
    let mut other = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| parse_q(v.trim()))
            // A malformed q selects nothing rather than guess.
            .unwrap_or(0.0);
        let kind = match media.as_str() {
            METALINK_TYPE => Wanted::Metalink,
            JSON_TYPE => Wanted::Json,
            _ => {
                other = other.max(q);
                continue;
            }
        };
        // Strictly greater: on a tie the type listed first keeps its place.
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((kind, q));
        }
    }
    match best {
        // Metalink is a document about the file, not the file: only a client
        // that prefers it to everything else gets it instead of the redirect.
        Some((Wanted::Metalink, q)) if q > other => Wanted::Metalink,
        Some((Wanted::Metalink, _)) => Wanted::Redirect,
        // An explicit type at least as wanted as the rest: the client asked for it.
        Some((kind, q)) if q >= other => kind,
        _ => Wanted::Redirect,
    }
}

/// An RFC 9110 qvalue: `0`, `1`, or up to three decimals.
fn parse_q(v: &str) -> Option<f32> {
    let ok = match v.split_once('.') {
        None => v == "0" || v == "1",
        Some((int, frac)) => {
            frac.len() <= 3
                && frac.bytes().all(|b| b.is_ascii_digit())
                && (int == "0" || (int == "1" && frac.bytes().all(|b| b == b'0')))
        }
    };
    if ok {
        v.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(path: &str, query: Option<&str>, accept: Option<&str>) -> Wanted {
        wanted(path, query, accept).0
    }

    #[test]
    fn query_keys_select_their_format() {
        assert_eq!(w("/a.iso", None, None), Wanted::Redirect);
        assert_eq!(w("/a.iso", Some("meta4"), None), Wanted::Metalink);
        assert_eq!(w("/a.iso", Some("json"), None), Wanted::Json);
        assert_eq!(w("/a.iso", Some("json=1"), None), Wanted::Json);
        assert_eq!(w("/a.iso", Some("mirrorlist"), None), Wanted::MirrorList);
        assert_eq!(w("/a.iso", Some("sha256"), None), Wanted::Sha256);
        assert_eq!(w("/debian/", Some("aptmirrors"), None), Wanted::AptList);
        assert_eq!(w("/a.iso", Some("utm=x&json"), None), Wanted::Json);
        // First known key wins.
        assert_eq!(w("/a.iso", Some("sha256&json"), None), Wanted::Sha256);
        // Unknown keys and look-alikes do not count.
        assert_eq!(w("/a.iso", Some("jsonp"), None), Wanted::Redirect);
        assert_eq!(w("/a.iso", Some("x=json"), None), Wanted::Redirect);
        assert_eq!(w("/a.iso", Some(""), None), Wanted::Redirect);
    }

    #[test]
    fn query_outranks_accept() {
        assert_eq!(
            w("/a.iso", Some("meta4"), Some("application/json")),
            Wanted::Metalink
        );
        assert_eq!(
            w(
                "/a.iso",
                Some("mirrorlist"),
                Some("application/metalink4+xml")
            ),
            Wanted::MirrorList
        );
    }

    #[test]
    fn meta4_suffix_names_the_file() {
        assert_eq!(
            wanted("/r/a.iso.meta4", None, None),
            (Wanted::Metalink, "/r/a.iso")
        );
        // The query still wins, and keeps the path as asked.
        assert_eq!(
            wanted("/r/a.iso.meta4", Some("sha256"), None),
            (Wanted::Sha256, "/r/a.iso.meta4")
        );
        assert_eq!(wanted("/.meta4", None, None), (Wanted::Redirect, "/.meta4"));
        assert_eq!(
            wanted("/d/.meta4", None, None),
            (Wanted::Redirect, "/d/.meta4")
        );
        assert_eq!(
            wanted("/a.meta4x", None, None),
            (Wanted::Redirect, "/a.meta4x")
        );
    }

    #[test]
    fn accept_selects_explicit_types() {
        let a = |h: &str| w("/a.iso", None, Some(h));
        assert_eq!(a("application/metalink4+xml"), Wanted::Metalink);
        assert_eq!(a("application/json"), Wanted::Json);
        assert_eq!(a("Application/JSON"), Wanted::Json);
        assert_eq!(a("application/json; charset=utf-8"), Wanted::Json);
        assert_eq!(a("application/json, */*;q=0.1"), Wanted::Json);
        // curl-style defaults added after an explicit type.
        assert_eq!(a("application/json, */*"), Wanted::Json);
        assert_eq!(
            a("application/json;q=0.5, application/metalink4+xml"),
            Wanted::Metalink
        );
        assert_eq!(
            a("application/metalink4+xml;q=0.9, application/json;q=0.9"),
            Wanted::Metalink
        );
    }

    #[test]
    fn metalink_only_when_preferred_to_everything_else() {
        let a = |h: &str| w("/a.iso", None, Some(h));
        // aria2c's default Accept: the file is as welcome as the Metalink.
        assert_eq!(
            a("*/*,application/metalink4+xml,application/metalink+xml"),
            Wanted::Redirect
        );
        assert_eq!(a("application/metalink4+xml, */*"), Wanted::Redirect);
        assert_eq!(
            a("application/metalink4+xml, application/octet-stream"),
            Wanted::Redirect
        );
        // Preferred, or the only type: the Metalink.
        assert_eq!(a("application/metalink4+xml, */*;q=0.9"), Wanted::Metalink);
        assert_eq!(a("application/metalink4+xml"), Wanted::Metalink);
        // Asked for by URL, whatever Accept says.
        assert_eq!(
            w(
                "/a.iso",
                Some("meta4"),
                Some("*/*,application/metalink4+xml")
            ),
            Wanted::Metalink
        );
        assert_eq!(
            w("/a.iso.meta4", None, Some("*/*,application/metalink4+xml")),
            Wanted::Metalink
        );
    }

    #[test]
    fn accept_q_values_and_wildcards() {
        let a = |h: &str| w("/a.iso", None, Some(h));
        assert_eq!(a("application/json;q=0"), Wanted::Redirect);
        assert_eq!(a("application/json; q=0.000"), Wanted::Redirect);
        assert_eq!(a("application/json;Q=0, */*"), Wanted::Redirect);
        assert_eq!(a("*/*"), Wanted::Redirect);
        assert_eq!(a("application/*"), Wanted::Redirect);
        assert_eq!(a(""), Wanted::Redirect);
        // Something else is preferred to JSON: the file.
        assert_eq!(a("application/json;q=0.5, */*"), Wanted::Redirect);
        assert_eq!(
            a("application/octet-stream, application/json;q=0.9"),
            Wanted::Redirect
        );
        // A browser's Accept.
        assert_eq!(
            a("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Wanted::Redirect
        );
        // Malformed q values select nothing.
        assert_eq!(a("application/json;q=2"), Wanted::Redirect);
        assert_eq!(a("application/json;q=abc"), Wanted::Redirect);
        assert_eq!(a("application/json;q=0.5555"), Wanted::Redirect);
        assert_eq!(a("application/json;q=1.000"), Wanted::Json);
    }
}
