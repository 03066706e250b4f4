//! Redirect or proxy: the decision for one request, from the path's mode
//! (`rules:`, else `mode:`), the file's size and what the client asks.
//!
//! "Asking not to be redirected" (`auto` mode only) is a request that carries
//! the header named by `proxy.no_redirect_header` (`X-No-Redirect` by
//! default, any value) or a `proxy` key in its query (`?proxy`). In
//! `redirect` mode nobody is proxied, whatever they ask: bandwidth is the
//! operator's to give.

use crate::config::{Config, DeliveryMode};
use crate::http::head::Headers;

/// True when this request gets the file itself rather than a redirect.
/// `path` is decoded, without its leading slash; `size` is the file's size
/// when the origin's index knows it.
pub fn wants_proxy(
    cfg: &Config,
    path: &str,
    size: Option<u64>,
    headers: &impl Headers,
    query: Option<&str>,
) -> bool {
    match cfg.mode_for(path) {
        DeliveryMode::Redirect => false,
        DeliveryMode::Proxy => true,
        DeliveryMode::Auto => {
            size.is_some_and(|s| s < cfg.proxy.auto_threshold)
                || headers.contains(&cfg.proxy.no_redirect_header)
                || query.is_some_and(|q| {
                    q.split('&')
                        .any(|k| k == "proxy" || k.starts_with("proxy="))
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        let y = format!("fallback: http://origin.example.org/\n{extra}");
        Config::from_yaml(&y, Path::new(".")).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let c = cfg("mode: auto\nrules:\n  - { pattern: \"*.iso\", mode: redirect }\n  - { pattern: \"repodata/*\", mode: proxy }\n  - { pattern: \"*.xml\", mode: redirect }\n");
        let h = HeaderMap::new();
        assert!(!wants_proxy(&c, "releases/a.iso", Some(10), &h, None));
        assert!(wants_proxy(&c, "repodata/repomd.xml", None, &h, None));
        // auto: small known files are proxied, unknown sizes are not.
        assert!(wants_proxy(&c, "pool/a.deb", Some(1000), &h, None));
        assert!(!wants_proxy(&c, "pool/a.deb", None, &h, None));
        assert!(!wants_proxy(&c, "pool/a.deb", Some(10 << 20), &h, None));
    }

    #[test]
    fn in_auto_mode_clients_may_ask_for_the_bytes() {
        let c = cfg("mode: auto\n");
        let mut h = HeaderMap::new();
        assert!(wants_proxy(&c, "a.iso", None, &h, Some("proxy")));
        assert!(wants_proxy(&c, "a.iso", None, &h, Some("x=1&proxy=1")));
        assert!(!wants_proxy(&c, "a.iso", None, &h, Some("proxyish")));
        h.insert("x-no-redirect", http::HeaderValue::from_static("1"));
        assert!(wants_proxy(&c, "a.iso", None, &h, None));
        // In redirect mode asking changes nothing.
        let r = cfg("");
        assert!(!wants_proxy(&r, "a.iso", Some(1), &h, Some("proxy")));
    }
}
