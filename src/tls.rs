//! Certificate authorities trusted for mirrors and the origin beyond the
//! built-in web PKI roots (`tls_roots:` in the config): for sites whose
//! mirrors or origin live on an internal network with a private CA.
//!
//! Every upstream client takes them: health probes, on-demand file checks,
//! manifest fetches and the proxy. They are read once, when the config is
//! validated, so a bad file is an error at its place in the config, never a
//! failure at the first HTTPS request.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Extra trusted roots; empty by default (the web PKI roots only). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TlsRoots(Arc<[CertificateDer<'static>]>);

impl PartialEq for TlsRoots {
    fn eq(&self, other: &Self) -> bool {
        self.0[..] == other.0[..]
    }
}

impl TlsRoots {
    /// The certificates of PEM files, in order.
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Self {
        TlsRoots(certs.into())
    }

    /// Every `CERTIFICATE` block of a PEM file; an error names what is wrong
    /// with it (unreadable, not PEM, no certificate, not a certificate).
    pub fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        // Parsed here as well, so that a block that is PEM but not a usable
        // certificate is refused now rather than by the first client built.
        let mut store = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| {
                format!(
                    "certificate {} of {} is not usable as a root: {e}",
                    i + 1,
                    path.display()
                )
            })?;
        }
        Ok(certs)
    }

    /// True when only the built-in roots are trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds them to a rustls root store (the proxy's client).
    pub fn add_to(&self, store: &mut rustls::RootCertStore) -> Result<(), rustls::Error> {
        for cert in self.0.iter() {
            store.add(cert.clone())?;
        }
        Ok(())
    }

    /// Adds them to a reqwest client (probes, checks, manifest fetches),
    /// whose built-in web PKI roots stay trusted.
    pub fn add_to_reqwest(
        &self,
        mut b: reqwest::ClientBuilder,
    ) -> reqwest::Result<reqwest::ClientBuilder> {
        for cert in self.0.iter() {
            b = b.add_root_certificate(reqwest::Certificate::from_der(cert)?);
        }
        Ok(b)
    }
}
