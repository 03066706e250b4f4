//! The registry's foundation: the file store keeps every acknowledged
//! write (across concurrent writers and a SIGKILL), refuses a document it
//! cannot read without touching it; registration requests are validated
//! by the config's rules and never panic the parser.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorgate::registry::document::{RegisteredMirror, Timestamp};
use mirrorgate::registry::validate::{
    check_target, check_target_addresses, is_private_target, parse_registration,
    request_from_stored, validate_registration,
};
use mirrorgate::registry::{Document, FileStore, Store, StoreError};
use proptest::prelude::*;
use serde_json::{json, Value};

fn mirror(url: &str) -> RegisteredMirror {
    RegisteredMirror {
        url: url.into(),
        country: Some("DE".into()),
        continent: Some("EU".into()),
        latitude: Some(50.11),
        longitude: Some(8.68),
        asn: vec![64500],
        weight: 100,
        countries_only: Vec::new(),
        exclude_countries: vec!["CN".into()],
        continents_only: Vec::new(),
        contact: Some("ops@example.org".into()),
        operator: Some("uni-a".into()),
        drained: false,
        created: Timestamp::now(),
        updated: Timestamp::now(),
    }
}

/// Registers `name` unless it is taken, as the API will.
async fn register(store: &dyn Store, name: String) -> Result<u64, StoreError> {
    store
        .update(move |doc: &mut Document| {
            if doc.mirrors.contains_key(&name) {
                return Err(StoreError::Conflict(format!("{name} is taken")));
            }
            doc.mirrors.insert(
                name.clone(),
                mirror(&format!("https://{name}.example.org/")),
            );
            Ok(())
        })
        .await
        .map(|((), rev)| rev)
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[tokio::test]
async fn round_trip_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let store: Arc<dyn Store> = Arc::new(FileStore::open(&path).unwrap());
    assert!(path.exists(), "an empty document is created at open");
    assert_eq!(*store.load().await.unwrap(), Document::default());

    let ((), rev) = store
        .update(|doc: &mut Document| {
            doc.mirrors
                .insert("m1".into(), mirror("https://m1.example.org/"));
            doc.overlays.insert("de-fra".into(), Default::default());
            doc.overlays.get_mut("de-fra").unwrap().drained = true;
            doc.operators.insert(
                "uni-a".into(),
                mirrorgate::registry::document::Operator {
                    name: "University A".into(),
                    token_hash: mirrorgate::registry::token::hash("mgo_x"),
                    created: Timestamp::now(),
                },
            );
            doc.record(mirrorgate::registry::document::AuditEntry {
                time: Timestamp::now(),
                actor: "admin".into(),
                action: "drain".into(),
                target: "de-fra".into(),
                before: Some(json!({"drained": false})),
                after: Some(json!({"drained": true})),
            });
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(rev, 1);
    let written = store.load().await.unwrap();
    let reopened = FileStore::open(&path).unwrap().current();
    assert_eq!(*reopened, *written);
    assert_eq!(reopened.revision, 1);
    assert!(reopened.is_drained("de-fra"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\n  \"version\": 1,"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "token hashes are not world-readable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_updates_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let store: Arc<dyn Store> = Arc::new(FileStore::open(&path).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { register(&*store, format!("m{i}")).await });
    }
    let mut revisions = BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        revisions.insert(r.unwrap().unwrap());
    }
    // Each write saw all those before it: revisions 1..=100, none shared.
    assert_eq!(revisions, (1..=100).collect());
    let doc = FileStore::open(&path).unwrap().current();
    assert_eq!(doc.mirrors.len(), 100);
    assert_eq!(doc.revision, 100);
    assert!(temp_files(dir.path()).is_empty());
}

#[tokio::test]
async fn a_refused_update_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let store = FileStore::open(&path).unwrap();
    let store: &dyn Store = &store;
    register(store, "m1".into()).await.unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = register(store, "m1".into()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m == "m1 is taken"),
        "{err}"
    );
    // A change that fails half-way leaves no trace either.
    let err = store
        .update(|doc: &mut Document| {
            doc.mirrors.clear();
            Err::<(), _>(StoreError::NotFound("no such mirror".into()))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(store.load().await.unwrap().mirrors.len(), 1);
    assert_eq!(store.load().await.unwrap().revision, 1);
}

#[test]
fn a_corrupted_document_is_refused_with_its_line_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let mut doc = Document::default();
    doc.mirrors
        .insert("m1".into(), mirror("https://m1.example.org/"));
    let text = serde_json::to_string_pretty(&doc).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // Line 6 (1-based) loses its closing quote and comma: a torn edit.
    let line6 = lines[5].to_owned();
    let torn = line6.trim_end_matches(',').trim_end_matches('"').to_owned();
    lines[5] = &torn;
    let corrupted = lines.join("\n");
    std::fs::write(&path, &corrupted).unwrap();

    let err = FileStore::open(&path).unwrap_err();
    let StoreError::Parse { line, path: p, .. } = &err else {
        panic!("expected a parse error, got {err}")
    };
    assert_eq!(*line, 6, "{err}");
    assert_eq!(p, &path);
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:6:", path.display())),
        "{shown}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), corrupted.as_bytes());

    // Structurally wrong (an unknown key) is refused the same way.
    let unknown = "{\n  \"version\": 1,\n  \"mirors\": {}\n}\n";
    std::fs::write(&path, unknown).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Parse { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("unknown field `mirors`"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), unknown.as_bytes());

    // A name given twice would lose one registration: refused at its line.
    let twice = "{\n  \"version\": 1,\n  \"overlays\": {\n    \"a\": {\"drained\": true},\n    \"a\": {\"drained\": false}\n  }\n}\n";
    std::fs::write(&path, twice).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Parse { line: 5, .. }), "{err}");
    assert!(err.to_string().contains("appears twice"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), twice.as_bytes());
}

#[test]
fn an_unknown_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let newer = "{\"version\": 2, \"shards\": []}";
    std::fs::write(&path, newer).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedVersion { found: 2, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("version 2 is not supported"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), newer.as_bytes());
}

#[test]
fn open_removes_only_its_own_stale_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    for name in [
        ".registry.json.tmp-4242-7",
        ".other.json.tmp-1-1",
        ".registry.json.tmp-notes",
        "registry.json.bak",
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    FileStore::open(&path).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".other.json.tmp-1-1",
            ".registry.json.tmp-notes",
            "registry.json",
            "registry.json.bak"
        ]
    );
}

#[test]
fn a_missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("registry.json");
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn the_example_config_documents_a_working_registry_section() {
    let example_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let text = std::fs::read_to_string(example_dir.join("mirrorgate.example.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let block = "# registry:\n\
                 #   # The registry document.";
    assert!(text.contains(block), "the example shows registry:");
    let enabled = text
        .replace("# registry:\n", "registry:\n")
        .replace(
            "#   path: /var/lib/mirrorgate/registry.json",
            &format!("  path: {}", path.display()),
        )
        .replace(
            "#   allow_private_targets: false",
            "  allow_private_targets: true",
        );
    let config = mirrorgate::config::Config::from_yaml(&enabled, &example_dir)
        .unwrap_or_else(|e| panic!("the example with its registry section: {e}"));
    assert_eq!(config.registry.path, Some(path));
    assert!(config.registry.allow_private_targets);
    // As shipped (commented out), the registry is off.
    let shipped = mirrorgate::config::Config::from_yaml(&text, &example_dir).unwrap();
    assert_eq!(shipped.registry.path, None);
}

/// Set in the child of [`killed_writer_loses_no_acknowledged_write`].
const CHILD_ENV: &str = "MIRRORGATE_REGISTRY_CRASH_CHILD";

/// Not a test on its own: the writer process that the crash test starts
/// (this same binary) and kills. It registers mirrors 100 at a time and
/// prints `ACK <name>` after each write the store acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_writer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (round, path) = spec.split_once(':').unwrap();
    let store: Arc<dyn Store> = Arc::new(FileStore::open(Path::new(path)).unwrap());
    for wave in 0..50 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let store = Arc::clone(&store);
            let name = format!("r{round}-w{wave}-{i}");
            tasks.spawn(async move {
                register(&*store, name.clone()).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {name}").unwrap();
                out.flush().unwrap();
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[test]
fn killed_writer_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let mut acked = BTreeSet::new();
    for round in 0..8 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{round}:{}", path.display()))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(name) = line.strip_prefix("ACK ") {
                    if tx.send(name.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        // Killed after a random number of acknowledged writes, i.e. at a
        // random point of the next write (100 are always in flight).
        let kill_after = rand::random_range(1..=200);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = 0;
        while seen < kill_after {
            let left = deadline.saturating_duration_since(Instant::now());
            let name = rx
                .recv_timeout(left)
                .expect("the writer acknowledges writes in time");
            acked.insert(name);
            seen += 1;
        }
        // std's kill is SIGKILL on Unix: no destructor, no flush, no cleanup.
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements already in the pipe count too.
        acked.extend(rx.try_iter());

        let doc = FileStore::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: the store must open: {e}"))
            .current();
        let missing: Vec<_> = acked
            .iter()
            .filter(|n| !doc.mirrors.contains_key(*n))
            .collect();
        assert!(missing.is_empty(), "round {round}: lost {missing:?}");
        assert!(
            temp_files(dir.path()).is_empty(),
            "stale temp files removed"
        );
    }
}

#[test]
fn a_valid_registration_becomes_a_stored_mirror() {
    let body = json!({
        "name": "uni-a.fra",
        "url": "https://mirror.uni-a.example/pub",
        "country": "de",
        "latitude": 50.11,
        "longitude": 8.68,
        "asn": [64500],
        "weight": 250,
        "exclude_countries": ["CN"],
        "contact": "ops@uni-a.example",
        "operator": "uni-a"
    });
    let reg = parse_registration(body.to_string().as_bytes()).unwrap();
    assert_eq!(reg.mirror.url.as_str(), "https://mirror.uni-a.example/pub/");
    let stored = reg.to_stored(Timestamp::now());
    assert_eq!(stored.country.as_deref(), Some("DE"));
    // Kept as given; derived from the country when mirrors are built, as
    // for config mirrors.
    assert_eq!(stored.continent, None);
    assert_eq!(stored.weight, 250);
    assert_eq!(stored.exclude_countries, ["CN"]);
    assert_eq!(stored.operator.as_deref(), Some("uni-a"));
}

#[test]
fn every_bad_field_is_reported_with_its_name() {
    let body = json!({
        "name": "bad name",
        "url": "https://user:pw@mirror.example/pub?x=1",
        "country": "XX",
        "latitude": 91.0,
        "longitude": 180.5,
        "weight": 0,
        "asn": [1, -5],
        "contact": "not an address",
        "operator": "a/b"
    });
    let errs = parse_registration(body.to_string().as_bytes()).unwrap_err();
    let fields: BTreeSet<&str> = errs.iter().filter_map(|e| e.field.as_deref()).collect();
    for f in [
        "name",
        "url",
        "country",
        "latitude",
        "longitude",
        "weight",
        "asn[1]",
        "contact",
        "operator",
    ] {
        assert!(fields.contains(f), "{f} not reported: {errs:?}");
    }
    let url = errs
        .iter()
        .find(|e| e.field.as_deref() == Some("url"))
        .unwrap();
    assert!(url.error.contains("user info"), "{url:?}");
}

#[test]
fn unknown_fields_wrong_types_and_oversize_bodies_are_refused() {
    let cases: [(Vec<u8>, Option<&str>, &str); 7] = [
        (
            br#"{"name":"m","url":"https://m.example/","enabled":false}"#.to_vec(),
            Some("enabled"),
            "unknown field",
        ),
        (
            br#"{"name":"m","url":"https://m.example/","weight":"heavy"}"#.to_vec(),
            Some("weight"),
            "invalid type",
        ),
        (
            br#"{"name":"m","url":"https://m.example/","asn":[1,"x"]}"#.to_vec(),
            Some("asn[1]"),
            "invalid type",
        ),
        (b"[1,2]".to_vec(), None, "must be a JSON object"),
        (b" \n null".to_vec(), None, "must be a JSON object"),
        (
            br#"{"name":"m","url":"https://m.example/"} trailing"#.to_vec(),
            None,
            "trailing",
        ),
        (vec![b' '; 20_000], None, "larger than"),
    ];
    for (body, field, message) in cases {
        let errs = parse_registration(&body).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field.as_deref(), field, "{errs:?}");
        assert!(errs[0].error.contains(message), "{errs:?}");
    }
    let long = json!({"name": "m", "url": format!("https://m.example/{}", "a".repeat(3000))});
    let errs = parse_registration(long.to_string().as_bytes()).unwrap_err();
    assert_eq!(errs[0].field.as_deref(), Some("url"));
    assert!(errs[0].error.contains("longer than 2048"), "{errs:?}");
}

#[test]
fn private_targets_are_recognised() {
    for s in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "::7f00:1",
        "2002:c0a8:101::1",
    ] {
        let ip: IpAddr = s.parse().unwrap();
        assert!(is_private_target(ip), "{s}");
        assert!(check_target_addresses(&[ip], false).is_err(), "{s}");
        assert!(check_target_addresses(&[ip], true).is_ok(), "{s}");
    }
    for s in [
        "8.8.8.8",
        "2a00:1450::1",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert!(!is_private_target(s.parse().unwrap()), "{s}");
    }
    // One private answer among public ones is enough to refuse.
    let mixed: Vec<IpAddr> = vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()];
    let err = check_target_addresses(&mixed, false).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("url"));
    assert!(
        err.error.contains("10.0.0.1") && err.error.contains("registry.allow_private_targets"),
        "{err:?}"
    );
}

#[tokio::test]
async fn loopback_hosts_are_refused_unless_allowed() {
    for u in [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://localhost/pub/",
    ] {
        let url = url::Url::parse(u).unwrap();
        let err = check_target(&url, false).await.unwrap_err();
        assert_eq!(err.field.as_deref(), Some("url"), "{u}");
        assert!(check_target(&url, true).await.is_ok(), "{u}");
    }
}

/// Any JSON value, with keys often the request's own.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "name",
            "url",
            "country",
            "continent",
            "latitude",
            "longitude",
            "asn",
            "weight",
            "countries_only",
            "exclude_countries",
            "continents_only",
            "contact",
            "operator",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,10}",
    ];
    leaf.prop_recursive(3, 48, 10, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn url_text() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["http", "https", "HTTPS", "ftp", "file", "javascript"]);
    let sep = prop::sample::select(vec!["://", ":", ":///", "://\t"]);
    let user = prop::sample::select(vec!["", "", "user@", "user:pw@", ":@", "@", "u%40x@"]);
    let host = prop::sample::select(vec![
        "example.org",
        "192.0.2.1",
        "[2001:db8::1]",
        "",
        "exa mple.org",
        "xn--bcher-kva.example",
    ]);
    let port = prop::sample::select(vec!["", ":8080", ":0", ":99999"]);
    let path = "(/[a-zA-Z0-9%._~?#-]{0,6}){0,3}";
    let query = prop::option::of("[a-z=&]{0,6}");
    let frag = prop::option::of("[a-z]{0,6}");
    (scheme, sep, user, host, port, path, query, frag).prop_map(|(s, sep, u, h, p, path, q, f)| {
        let mut out = format!("{s}{sep}{u}{h}{p}{path}");
        if let Some(q) = q {
            out.push('?');
            out.push_str(&q);
        }
        if let Some(f) = f {
            out.push('#');
            out.push_str(&f);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_json_is_answered_without_panic(v in json_value()) {
        let _ = parse_registration(v.to_string().as_bytes());
    }

    #[test]
    fn any_bytes_are_answered_without_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_registration(&b);
    }

    #[test]
    fn a_stored_registration_validates_again_to_itself(
        country in prop::option::of(prop::sample::select(vec!["DE", "fr", "US", "JP"])),
        // Written as people write them (a few decimals): serde_json's default
        // float reading may be one ulp off for arbitrary bit patterns.
        coords in prop::option::of((-9_000i32..=9_000, -18_000i32..=18_000)
            .prop_map(|(a, b)| (f64::from(a) / 100.0, f64::from(b) / 100.0))),
        asn in prop::collection::vec(1u32..=u32::MAX, 0..3),
        weight in 1u32..=1_000_000,
        exclude in prop::collection::vec(prop::sample::select(vec!["CN", "RU", "BR"]), 0..3),
        continents in prop::collection::vec(prop::sample::select(vec!["EU", "AS", "OC"]), 0..3),
        contact in prop::option::of(Just("ops@example.org")),
    ) {
        let body = json!({
            "name": "m1",
            "url": "https://m1.example.org/pub",
            "country": country,
            "latitude": coords.map(|c| c.0),
            "longitude": coords.map(|c| c.1),
            "asn": asn,
            "weight": weight,
            "exclude_countries": exclude,
            "continents_only": continents,
            "contact": contact,
        });
        let now = Timestamp::now();
        let first = parse_registration(body.to_string().as_bytes()).unwrap().to_stored(now);
        let again = validate_registration(request_from_stored("m1", &first)).unwrap().to_stored(now);
        prop_assert_eq!(&again, &first);
        // And through the file's JSON as well.
        let read: RegisteredMirror = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        prop_assert_eq!(&read, &first);
    }

    #[test]
    fn every_accepted_url_is_plain_http_or_https(
        u in prop_oneof![url_text(), ".{0,40}"]
    ) {
        let body = json!({"name": "m1", "url": u}).to_string();
        if let Ok(reg) = parse_registration(body.as_bytes()) {
            let url = &reg.mirror.url;
            prop_assert!(matches!(url.scheme(), "http" | "https"), "{}", url);
            prop_assert!(url.username().is_empty() && url.password().is_none(), "{}", url);
            prop_assert!(url.query().is_none() && url.fragment().is_none(), "{}", url);
            prop_assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{}", url);
            prop_assert!(url.path().ends_with('/'), "{}", url);
        }
    }
}
