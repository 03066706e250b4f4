//! HTTPS mirrors: a private certificate authority named in `tls_roots`, health
//! probes over TLS, and proxying over HTTP/2 to a mirror that offers it in
//! ALPN (HTTP/1.1 to one that does not). The mirrors are real TLS servers on
//! loopback with certificates made for the test.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mirrorgate::config::Config;
use mirrorgate::health::HealthState;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A certificate authority and a certificate it issued for 127.0.0.1 and localhost.
struct TestPki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> TestPki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mirrorgate test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        leaf: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

/// An HTTPS mirror serving one file under `/pub/`, recording the HTTP
/// version of every request for that file.
struct TlsMirror {
    addr: SocketAddr,
    versions: Arc<Mutex<Vec<Version>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsMirror {
    /// `alpn`: the protocols offered, e.g. `[b"h2", b"http/1.1"]`.
    async fn start(pki: &TestPki, alpn: &[&[u8]], body: Bytes) -> TlsMirror {
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.leaf.clone()],
            PrivateKeyDer::Pkcs8(pki.leaf_key.clone_key()),
        )
        .unwrap();
        tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let versions: Arc<Mutex<Vec<Version>>> = Arc::default();
        let seen = versions.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen, body) = (acceptor.clone(), seen.clone(), body.clone());
                tokio::spawn(async move {
                    // Clients that give up the handshake (a probe timing out) are normal.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let resp = match req.uri().path() {
                            "/pub/" => Response::new(Full::new(Bytes::from_static(b"index\n"))),
                            "/pub/file.bin" => {
                                seen.lock().unwrap().push(req.version());
                                Response::new(Full::new(body.clone()))
                            }
                            _ => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        std::future::ready(Ok::<_, Infallible>(resp))
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TlsMirror {
            addr,
            versions,
            task,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/pub/", self.addr.port())
    }

    fn versions(&self) -> Vec<Version> {
        self.versions.lock().unwrap().clone()
    }
}

fn body() -> Bytes {
    // Several HTTP/2 frames' worth, not one repeated byte.
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A config for an HTTP/2 mirror in Germany and an HTTP/1.1-only one in the
/// US, everything proxied, probes with `rise: 1`; `roots` names the CA file.
fn yaml(h2: &TlsMirror, h1: &TlsMirror, roots: Option<&Path>) -> String {
    let ms = [
        M {
            name: "h2-de",
            url: h2.url(),
            cc: "DE",
            lat: 50.11,
            lon: 8.68,
            extra: "",
        },
        M {
            name: "h1-us",
            url: h1.url(),
            cc: "US",
            lat: 40.71,
            lon: -74.01,
            extra: "",
        },
    ];
    let mut top = String::from(
        "trusted_proxies: [127.0.0.0/8]\nhealth:\n  interval: 1h\n  timeout: 5s\n  rise: 1\n  fall: 1\nmode: proxy\n",
    );
    if let Some(p) = roots {
        top.push_str(&format!("tls_roots: [\"{}\"]\n", p.display()));
    }
    config_yaml(&ms, &top)
}

fn write_ca(dir: &tempfile::TempDir, pki: &TestPki) -> PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    path
}

/// `GET /file.bin` from a client at `ip`.
async fn download(t: &TestApp, ip: &str) -> reqwest::Response {
    t.http
        .get(t.url("/file.bin"))
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn https_mirrors_of_a_private_ca_are_probed_and_proxied_over_http2_where_offered() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&dir, &pki);
    let data = body();
    let h2 = TlsMirror::start(&pki, &[b"h2", b"http/1.1"], data.clone()).await;
    let h1 = TlsMirror::start(&pki, &[b"http/1.1"], data.clone()).await;
    let t = TestApp::start(&yaml(&h2, &h1, Some(&ca))).await;
    // Probes went over TLS, trusting the CA of tls_roots.
    t.wait_for("both HTTPS mirrors up", |s| {
        s.mirrors.iter().all(|e| e.health.state == HealthState::Up)
    })
    .await;

    let de = download(&t, DE).await;
    assert_eq!(de.status(), StatusCode::OK);
    assert_eq!(
        de.bytes().await.unwrap(),
        data,
        "byte-identical over HTTP/2"
    );
    assert_eq!(
        h2.versions(),
        vec![Version::HTTP_2],
        "ALPN offered h2: HTTP/2 is used"
    );

    let us = download(&t, US).await;
    assert_eq!(us.status(), StatusCode::OK);
    assert_eq!(
        us.bytes().await.unwrap(),
        data,
        "byte-identical over HTTP/1.1"
    );
    assert_eq!(
        h1.versions(),
        vec![Version::HTTP_11],
        "no h2 in ALPN: HTTP/1.1"
    );
}

#[tokio::test]
async fn without_the_ca_https_mirrors_are_not_trusted() {
    let pki = pki();
    let h2 = TlsMirror::start(&pki, &[b"h2", b"http/1.1"], body()).await;
    let h1 = TlsMirror::start(&pki, &[b"http/1.1"], body()).await;
    let t = TestApp::start(&yaml(&h2, &h1, None)).await;
    let snap = t.app.state().load_full();
    for e in &snap.mirrors {
        assert_eq!(
            (
                e.health.state,
                e.health.last_failure.as_ref().map(|f| f.as_str())
            ),
            (HealthState::Down, Some("tls")),
            "{}: a certificate of an unknown CA must fail the probe",
            e.mirror.name
        );
    }
    let resp = download(&t, DE).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(h2.versions().is_empty() && h1.versions().is_empty());
}

#[test]
fn bad_tls_roots_are_config_errors_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let key_only = dir.path().join("key.pem");
    std::fs::write(&key_only, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let base = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ngeoip:\n  city: {}\nfallback: https://origin.example.org/\n",
        repo_path("geoip/demo-city.mmdb").display()
    );
    let cases = [
        (
            format!(
                "tls_roots: [\"{}\"]\n",
                dir.path().join("missing.pem").display()
            ),
            "tls_roots[0]",
            "cannot read",
        ),
        (
            format!("tls_roots: [\"{}\"]\n", junk.display()),
            "tls_roots[0]",
            "no PEM certificate",
        ),
        (
            format!("tls_roots: [\"\", \"{}\"]\n", key_only.display()),
            "tls_roots[1]",
            "no PEM certificate",
        ),
        (
            "tls_roots: [\"\"]\n".to_string(),
            "tls_roots[0]",
            "is empty",
        ),
    ];
    for (extra, place, words) in cases {
        let yaml = format!("{base}{extra}");
        let errors = Config::from_yaml(&yaml, Path::new("."))
            .expect_err(&yaml)
            .to_string();
        assert!(
            errors.contains(&format!("{place}: ")) && errors.contains(words),
            "{extra}: {errors}"
        );
    }
    let pki = pki();
    let ca = write_ca(&dir, &pki);
    let ok = format!("{base}tls_roots: [\"{}\"]\n", ca.display());
    let config = Config::from_yaml(&ok, Path::new(".")).unwrap();
    assert!(!config.tls_roots.is_empty());
}
