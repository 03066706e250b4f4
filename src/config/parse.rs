//! YAML text -> [`RawConfig`], with a place on every error and limits on
//! what the parser will do.
//!
//! How places are derived: the text is deserialized straight into the raw
//! structs through `serde_path_to_error`, which records the key path serde was
//! in when it failed (`mirrors[2].weight`); serde-saphyr adds the line and
//! column. An error then reads `mirrors[2]: unknown field `wieght`, expected
//! one of ... (line 31, column 5)`. Unknown keys are all collected in one
//! pass (see `unknown_keys.rs`), and the file is still read without them, so
//! `validate` reports its own errors beside them. Serde stops at its first
//! other error, so a file with a structural mistake (a list where a map
//! belongs) gets that one message after the unknown keys met before it; that
//! is why the raw structs keep values loose (text, `i64`, `f64`): value
//! mistakes are left to `validate`, which reports all of them. A syntax error
//! has no key path, only its line and column.
//!
//! We chose this over parsing into a generic value tree and walking it: the
//! derived structs stay the single statement of the file's shape, and the
//! messages (serde's "unknown field `x`, expected one of ...") are already
//! the clearest we could write.
//!
//! Limits: the text may be at most [`MAX_CONFIG_BYTES`]; depth, node count
//! and alias expansion are capped so that a "billion laughs" document is
//! refused quickly instead of eating memory.

use serde_path_to_error::Segment;

use super::file::RawConfig;
use super::unknown_keys;
use super::validate::ConfigError;

/// Largest config text accepted (4 MiB): far above any real mirror list.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;

/// Options for serde-saphyr. The numbers leave room for thousands of mirrors
/// and stop expansion bombs: aliases may replay at most 100k events in total,
/// which a real config (a few anchors for shared settings) never approaches.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 1_000_000,
            max_nodes: 250_000,
            max_depth: 32,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_documents: 1,
            max_total_scalar_bytes: MAX_CONFIG_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 1_000,
        },
        // Plain messages: the snippet would repeat the line we already name.
        with_snippet: false,
    }
}

/// Parses the text into the raw structs, with every unknown key found (the
/// structs are read without them); or, when serde meets another error, the
/// unknown keys found before it and that error.
pub(super) fn parse(text: &str) -> Result<(RawConfig, Vec<ConfigError>), Vec<ConfigError>> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(vec![ConfigError::new(
            "",
            format!(
                "the file is {} bytes; the limit is {MAX_CONFIG_BYTES} bytes",
                text.len()
            ),
        )]);
    }
    let mut path = None;
    let found = unknown_keys::Found::default();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize::<_, Option<RawConfig>>(unknown_keys::wrap(de, &found))
            .map_err(|e| {
                path = Some(yaml_path(e.path()));
                e.into_inner()
            })
    });
    let mut errors = found.into_inner();
    match result {
        // An empty file (or one holding only comments) is all defaults.
        Ok(raw) => Ok((raw.unwrap_or_default(), errors)),
        Err(e) => {
            errors.push(ConfigError::new(path.unwrap_or_default(), describe(&e)));
            Err(errors)
        }
    }
}

/// `mirrors[2].url` from serde_path_to_error's segments.
fn yaml_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The parser's message in the file's terms, with its line and column.
fn describe(e: &serde_saphyr::Error) -> String {
    let msg = words(e);
    match e.location() {
        Some(loc) => format!("{msg} (line {}, column {})", loc.line(), loc.column()),
        None => msg,
    }
}

fn words(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match e.without_snippet() {
        E::InvalidScalar { ty, .. } => format!("expected {}", type_words(ty)),
        E::Unexpected { expected, .. } => format!("expected {}", shape_words(expected)),
        E::Budget { breach, .. } => {
            format!("refused: the document goes beyond what a config file needs ({breach:?})")
        }
        E::DuplicateMappingKey { key, .. } => match key {
            Some(k) => format!("key {k:?} is given twice; keep one"),
            None => "a key is given twice; keep one".into(),
        },
        // The error met while replaying an alias; `describe` adds where it was used.
        E::AliasError { error, .. } => format!("{} (through an alias)", words(error)),
        // serde-saphyr appends "at line L, column C" to its own text; `describe` adds it.
        other => strip_location(&other.to_string()).to_owned(),
    }
}

fn strip_location(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// serde-saphyr's scalar type names, in words an operator knows.
fn type_words(ty: &str) -> &str {
    match ty {
        "bool" | "boolean" => "true or false",
        "f32" | "f64" | "floating point" => "a number",
        t if t.starts_with('i') || t.starts_with('u') => "a whole number",
        t => t,
    }
}

fn shape_words(expected: &str) -> &str {
    match expected {
        "sequence start" => "a list",
        "mapping start" => "a map of keys and values",
        "string scalar" => "a single value, not a list or a map",
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error of `text`: the unknown keys, then serde's error if any.
    fn errs(text: &str) -> Vec<ConfigError> {
        match parse(text) {
            Ok((raw, unknown)) if unknown.is_empty() => panic!("parsed: {raw:?}"),
            Ok((_, unknown)) => unknown,
            Err(e) => e,
        }
    }

    fn err(text: &str) -> ConfigError {
        let mut all = errs(text);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn every_unknown_key_is_reported_at_once() {
        let text = "listen: 127.0.0.1:1\nlisten_addr: x\nhealth:\n  intervall: 5s\n  rise: 2\n\
                    mirrors:\n  - name: a\n  - name: b\n    wieght: 3\n    url: http://b/\n";
        let (raw, unknown) = parse(text).unwrap();
        let places: Vec<&str> = unknown.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(
            places,
            ["listen_addr", "health.intervall", "mirrors[1].wieght"]
        );
        for (e, line) in unknown.iter().zip([2, 4, 9]) {
            assert!(e.message.contains("unknown field"), "{e}");
            assert!(e.message.contains(&format!("(line {line}, column ")), "{e}");
        }
        assert!(unknown[2].message.contains("`weight`"), "{}", unknown[2]);
        // What is known is still read, around the unknown keys.
        assert_eq!(raw.health.unwrap().rise, Some(2));
        let mirrors = raw.mirrors.unwrap();
        assert_eq!(mirrors[1].url.as_deref(), Some("http://b/"));
    }

    #[test]
    fn a_key_that_is_not_text_is_unknown_too() {
        for text in ["listen: 127.0.0.1:1\n8080: x\n", "health:\n  true: 1\n"] {
            let all = errs(text);
            assert_eq!(all.len(), 1, "{all:?}");
            assert!(all[0].message.contains("unknown field"), "{all:?}");
        }
    }

    #[test]
    fn unknown_keys_come_before_a_later_structural_error() {
        let all = errs("listen_addr: x\nhealth:\n  rise: [1]\n");
        let places: Vec<&str> = all.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(places, ["listen_addr", "health.rise"]);
    }

    #[test]
    fn empty_text_is_all_defaults() {
        assert!(parse("").is_ok());
        assert!(parse("# nothing\n").is_ok());
    }

    #[test]
    fn empty_sections_are_defaults() {
        let raw =
            parse("selection:   # defaults\nlimits:\nhealth:\n").map_err(|e| format!("{e:?}"));
        assert!(raw.is_ok(), "{raw:?}");
    }

    #[test]
    fn unknown_top_level_key_names_it_and_the_allowed_ones() {
        let e = err("listen: 127.0.0.1:1\nlisten_addr: x\n");
        assert_eq!(e.place, "listen_addr");
        assert!(e.message.contains("unknown field"), "{e}");
        assert!(e.message.contains("admin_listen"), "{e}");
        assert!(e.message.contains("line 2, column 1"), "{e}");
    }

    #[test]
    fn unknown_nested_key_has_its_path() {
        let e = err("mirrors:\n  - name: a\n  - name: b\n    wieght: 3\n");
        assert_eq!(e.place, "mirrors[1].wieght");
        assert!(e.message.contains("weight"), "{e}");
        assert!(e.message.contains("line 4"), "{e}");
        let e = err("health:\n  intervall: 5s\n");
        assert_eq!(e.place, "health.intervall");
        assert!(e.message.contains("interval"), "{e}");
    }

    #[test]
    fn wrong_type_has_the_key_path() {
        let e = err("mirrors:\n  - name: a\n    weight: lots\n");
        assert_eq!(e.place, "mirrors[0].weight");
        assert!(e.message.contains("whole number"), "{e}");
        assert!(e.message.contains("line 3, column 13"), "{e}");
        let e = err("mirrors:\n  - name: a\n    latitude: north\n");
        assert_eq!(e.place, "mirrors[0].latitude");
        assert!(e.message.contains("number"), "{e}");
        let e = err("mirrors:\n  - enabled: maybe\n");
        assert_eq!(e.place, "mirrors[0].enabled");
        assert!(e.message.contains("true or false"), "{e}");
        let e = err("health:\n  rise: [1]\n");
        assert_eq!(e.place, "health.rise");
        let e = err("health: 5\n");
        assert_eq!(e.place, "health");
        assert!(e.message.contains("map"), "{e}");
        let e = err("mirrors:\n  - name: a\n    asn: 5\n");
        assert_eq!(e.place, "mirrors[0].asn");
        assert!(e.message.contains("list"), "{e}");
        let e = err("geoip:\n  city: {a: b}\n");
        assert_eq!(e.place, "geoip.city");
        assert!(e.message.contains("list of paths"), "{e}");
        let e = err("geoip:\n  city: [a, [b]]\n");
        assert_eq!(e.place, "geoip.city[1]");
    }

    #[test]
    fn duplicate_key_is_refused() {
        let e = err("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n");
        assert!(e.message.contains("twice"), "{e}");
        assert!(e.message.contains("line 2"), "{e}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("listen: \"127.0.0.1:1\nadmin_listen: x\n");
        assert!(e.message.contains("line "), "{e}");
        assert!(e.message.contains("column "), "{e}");
        let e = err("health:\n  rise: 2\n fall: 2\n");
        assert!(e.message.contains("line 3"), "{e}");
        let e = err("\t- x");
        assert!(e.message.contains("line 1"), "{e}");
    }

    #[test]
    fn several_documents_are_refused() {
        let e = err("---\nlisten: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n");
        assert!(e.message.contains("Documents"), "{e}");
    }

    #[test]
    fn billion_laughs_is_refused() {
        // The classic: nine levels of nine aliases.
        let mut text = String::from("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
        let mut prev = 'a';
        for n in 'b'..='i' {
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{n}: &{n} [{refs}]\n"));
            prev = n;
        }
        text.push_str("mirrors: *i\n");
        // The unknown keys `a` to `f` are reported, then replaying their aliases is refused.
        let all = errs(&text);
        assert!(all.last().unwrap().message.contains("alias"), "{all:?}");
        // The same in the shape of the file, where every alias is accepted:
        // a big scalar replayed into many list entries.
        let big = "x".repeat(1 << 20);
        let refs = vec!["*a"; 1000].join(", ");
        let e = err(&format!("fallback: &a {big}\ntrusted_proxies: [{refs}]\n"));
        assert_eq!(e.place, "trusted_proxies");
        assert!(e.message.contains("refused"), "{e}");
        assert!(e.message.contains("alias"), "{e}");
    }

    #[test]
    fn oversized_text_is_refused() {
        let text = format!("# {}\n", "x".repeat(MAX_CONFIG_BYTES));
        let e = err(&text);
        assert_eq!(e.place, "");
        assert!(e.message.contains("limit"), "{e}");
    }
}
