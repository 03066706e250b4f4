//! Getting a manifest's text when it changed: a local file by its size and
//! modification time, a URL by a conditional GET (`If-None-Match` and
//! `If-Modified-Since` from the previous answer; 304 means unchanged).
//!
//! Bounded: a timeout for the whole request and a size limit on the body,
//! checked against `Content-Length` first and again while reading. Parsing is
//! the caller's (`manifest.rs`).

use crate::tls::TlsRoots;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use http::{HeaderValue, StatusCode};
use url::Url;

/// Where a manifest lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathOrUrl {
    Path(PathBuf),
    Url(Url),
}

impl PathOrUrl {
    /// `http://` and `https://` are URLs; anything else is a local path.
    pub fn parse(s: &str) -> PathOrUrl {
        match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => PathOrUrl::Url(u),
            _ => PathOrUrl::Path(PathBuf::from(s)),
        }
    }
}

impl std::fmt::Display for PathOrUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathOrUrl::Path(p) => write!(f, "{}", p.display()),
            PathOrUrl::Url(u) => write!(f, "{u}"),
        }
    }
}

/// Limits of one fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub timeout: Duration,
    pub max_bytes: u64,
    /// Trusted for an HTTPS manifest URL besides the web PKI roots.
    pub roots: TlsRoots,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(60),
            max_bytes: 512 << 20,
            roots: TlsRoots::default(),
        }
    }
}

/// Why a manifest could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{location}: {error}")]
    Read {
        location: String,
        error: std::io::Error,
    },
    #[error("{location}: {error}")]
    Http {
        location: String,
        error: reqwest::Error,
    },
    #[error("{location}: answered {status}")]
    Status {
        location: String,
        status: StatusCode,
    },
    #[error("{location}: larger than the limit of {limit} bytes")]
    TooLarge { location: String, limit: u64 },
    #[error("{location}: not UTF-8 text")]
    NotText { location: String },
}

/// What identified the last text taken, to tell whether it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
    /// Local file: size and modification time.
    pub file: Option<(u64, Option<SystemTime>)>,
}

/// Fetches manifests from one place, remembering what it took last.
pub struct Fetcher {
    location: PathOrUrl,
    opts: FetchOptions,
    client: Option<reqwest::Client>,
    last: Validators,
}

impl Fetcher {
    pub fn new(location: PathOrUrl, opts: FetchOptions) -> Result<Fetcher, FetchError> {
        let client = match &location {
            PathOrUrl::Url(u) => Some(
                opts.roots
                    .add_to_reqwest(reqwest::Client::builder())
                    .and_then(|b| b.timeout(opts.timeout).build())
                    .map_err(|error| FetchError::Http {
                        location: u.to_string(),
                        error,
                    })?,
            ),
            PathOrUrl::Path(_) => None,
        };
        Ok(Fetcher {
            location,
            opts,
            client,
            last: Validators::default(),
        })
    }

    pub fn location(&self) -> &PathOrUrl {
        &self.location
    }

    /// The text when it changed since the last call that returned some;
    /// `None` when unchanged.
    pub async fn fetch_if_changed(&mut self) -> Result<Option<String>, FetchError> {
        match (&self.location, &self.client) {
            (PathOrUrl::Url(url), Some(client)) => {
                let url = url.clone();
                let client = client.clone();
                self.fetch_url(&client, url).await
            }
            (PathOrUrl::Path(p), _) => {
                let p = p.clone();
                self.fetch_file(p).await
            }
            (PathOrUrl::Url(u), None) => Err(FetchError::Read {
                location: u.to_string(),
                error: std::io::Error::other("no HTTP client"),
            }),
        }
    }

    async fn fetch_file(&mut self, path: PathBuf) -> Result<Option<String>, FetchError> {
        let location = path.display().to_string();
        let read_err = |error| FetchError::Read {
            location: location.clone(),
            error,
        };
        let meta = tokio::fs::metadata(&path).await.map_err(read_err)?;
        let seen = (meta.len(), meta.modified().ok());
        if self.last.file == Some(seen) {
            return Ok(None);
        }
        if meta.len() > self.opts.max_bytes {
            return Err(FetchError::TooLarge {
                location,
                limit: self.opts.max_bytes,
            });
        }
        let bytes = tokio::fs::read(&path).await.map_err(read_err)?;
        let text = String::from_utf8(bytes).map_err(|_| FetchError::NotText {
            location: location.clone(),
        })?;
        self.last.file = Some(seen);
        Ok(Some(text))
    }

    async fn fetch_url(
        &mut self,
        client: &reqwest::Client,
        url: Url,
    ) -> Result<Option<String>, FetchError> {
        let location = url.to_string();
        let http_err = |error| FetchError::Http {
            location: location.clone(),
            error,
        };
        let mut req = client.get(url.clone());
        if let Some(v) = &self.last.etag {
            req = req.header(IF_NONE_MATCH, v.clone());
        }
        if let Some(v) = &self.last.last_modified {
            req = req.header(IF_MODIFIED_SINCE, v.clone());
        }
        let mut resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(FetchError::Status { location, status });
        }
        let limit = self.opts.max_bytes;
        let too_large = || FetchError::TooLarge {
            location: location.clone(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let etag = resp.headers().get(ETAG).cloned();
        let last_modified = resp.headers().get(LAST_MODIFIED).cloned();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| FetchError::NotText {
            location: location.clone(),
        })?;
        // Remembered only once the whole body is in: a failed read is retried in full.
        self.last.etag = etag;
        self.last.last_modified = last_modified;
        Ok(Some(text))
    }
}
