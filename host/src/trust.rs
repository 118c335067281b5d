//! The CAs a device trusts for the cloud's TLS: the factory CA from the host's config
//! (`cloud_ca`, which verifies the first IoT DNS request, as TuyaOS compiles in its IoT
//! DNS CA) and the CAs IoT DNS delivered since (`caArr`, which the component hands over
//! with `set-endpoints` and the host keeps with the endpoints). Nothing else: no public
//! roots. A device with a factory CA is pinned: it refuses plain HTTP and MQTT outright.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How long a cloud connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The cloud trust of one device, with the clients built from it.
#[derive(Debug, Clone)]
pub struct CloudTrust {
    factory: Vec<CertificateDer<'static>>,
    delivered: Vec<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    http: reqwest::Client,
}

impl CloudTrust {
    /// The trust of a device whose factory CA is in the PEM file `factory` (none: a
    /// development device that talks plain HTTP and MQTT).
    pub fn new(factory: Option<&Path>) -> anyhow::Result<Self> {
        let factory = match factory {
            None => Vec::new(),
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("failed to read cloud_ca {}", path.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("invalid PEM in cloud_ca {}", path.display()))?;
                anyhow::ensure!(
                    !certs.is_empty(),
                    "no certificate in cloud_ca {}",
                    path.display()
                );
                certs
            }
        };
        let mut trust = Self {
            factory,
            delivered: Vec::new(),
            tls: None,
            http: reqwest::Client::new(),
        };
        trust.rebuild()?;
        Ok(trust)
    }

    /// Whether the device pins a cloud CA (and so refuses plain connections).
    pub fn pinned(&self) -> bool {
        !self.factory.is_empty()
    }

    /// Takes the CAs IoT DNS delivered (base64 DER); returns whether they changed.
    /// Entries that do not decode are skipped with a warning.
    pub fn deliver(&mut self, cas: &[String]) -> bool {
        if self.delivered == cas {
            return false;
        }
        self.delivered = cas.to_vec();
        if let Err(e) = self.rebuild() {
            tracing::warn!(error = %format!("{e:#}"), "the delivered CAs are unusable; keeping the factory CA");
        }
        true
    }

    /// The HTTP client for cloud requests (pinned to these CAs when there are any).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The TLS configuration for `mqtts://` (none without CAs).
    pub fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    fn rebuild(&mut self) -> anyhow::Result<()> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in &self.factory {
            roots.add(cert.clone()).context("the factory CA")?;
        }
        for b64 in &self.delivered {
            let added = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|der| roots.add(CertificateDer::from(der)).ok());
            if added.is_none() {
                tracing::warn!("a CA delivered by IoT DNS is not a certificate; skipped");
            }
        }
        // Every request says what code this host runs, so activation records it and the
        // cloud sends this device the bundle it can run.
        let mut headers = reqwest::header::HeaderMap::new();
        let platform = crate::platform::this().to_string();
        headers.insert(
            tether_proto::platform::HEADER,
            reqwest::header::HeaderValue::from_str(&platform).context("the platform header")?,
        );
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .default_headers(headers);
        if roots.is_empty() {
            self.tls = None;
            self.http = builder.build().context("the HTTP client")?;
            return Ok(());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = ClockVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .context("the certificate verifier")?,
        };
        let config = rustls::ClientConfig::builder_with_details(provider, Arc::new(CloudTime))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        self.http = builder
            .use_preconfigured_tls(config.clone())
            .build()
            .context("the HTTP client")?;
        self.tls = Some(Arc::new(config));
        Ok(())
    }
}

/// The time this host believes (`clock.rs`), for every time check of its TLS clients.
#[derive(Debug)]
struct CloudTime;

impl TimeProvider for CloudTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            crate::clock::unix_secs(),
        )))
    }
}

/// The standard checks of the cloud's certificate chain against the device's CAs. Until
/// the time is trusted (a board that booted without a real-time clock and has not heard
/// from the cloud yet), a certificate that is not valid *yet* is checked again at the
/// moment it becomes valid, so every other check (CA, name, signature, expiry after this
/// release) still applies.
#[derive(Debug)]
struct ClockVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

/// How many times a chain is checked again at a later `notBefore` (one per certificate).
const MAX_RECHECKS: usize = 4;

impl ServerCertVerifier for ClockVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut at = now;
        let trusted = crate::clock::trusted();
        let mut tries = 0;
        loop {
            let verified = self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                at,
            );
            match verified {
                Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                    not_before,
                    ..
                })) if !trusted && tries < MAX_RECHECKS && not_before > at => {
                    tries += 1;
                    at = not_before;
                }
                other => return other,
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether `error` (or what caused it) is a TLS failure: an untrusted, expired or
/// misnamed certificate, or a broken handshake.
pub fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        // An I/O error's `source` skips the error it wraps: look inside it first.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_without_a_factory_ca_is_not_pinned_and_a_bad_file_is_refused() {
        let plain = CloudTrust::new(None).expect("builds");
        assert!(!plain.pinned());
        assert!(plain.tls().is_none());
        let dir = tempfile::tempdir().expect("temp dir");
        let garbage = dir.path().join("ca.pem");
        std::fs::write(&garbage, "not a certificate").expect("written");
        let err = CloudTrust::new(Some(&garbage)).expect_err("no certificate");
        assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
        let err = CloudTrust::new(Some(&dir.path().join("missing.pem"))).expect_err("missing");
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    }

    #[test]
    fn delivered_cas_are_taken_once_and_garbage_is_skipped() {
        let mut trust = CloudTrust::new(None).expect("builds");
        assert!(trust.deliver(&["not base64!".into()]));
        assert!(!trust.deliver(&["not base64!".into()]), "unchanged");
        assert!(trust.tls().is_none(), "nothing usable was delivered");
    }
}
