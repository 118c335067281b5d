//! TLS for the service's API and broker: the server certificate and key, either from the operator's
//! PEM files or from a local CA that the service creates in its data dir on first start
//! (`tls/ca.pem`, `tls/ca.key`, owner-only), and the CA certificates that IoT DNS hands
//! devices in `caArr`. With a local CA the server certificate is issued again at every
//! start for the service's current public names, so it never outlives a restart's
//! configuration.
//!
//! Rotation (`tether-service tls rotate-ca`, then `tls retire-ca`): a new CA replaces the
//! current one, which is kept as the previous CA, and the new CA is also signed by the
//! previous one (a cross certificate). During that overlap the service sends its
//! certificate with the cross certificate, so devices that trust only the previous CA
//! still verify it, and IoT DNS hands out both CAs, so devices learn the new one at their
//! next lookup. Retiring deletes the previous CA and the cross certificate.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The data dir's subfolder for the local CA and the certificates it issues.
pub const TLS_DIR: &str = "tls";
/// The local CA's validity, in days.
const CA_DAYS: i64 = 3650;
/// A server certificate's validity, in days (the most that browsers accept).
const SERVER_DAYS: i64 = 397;
/// Files of the local CA in [`TLS_DIR`]: the current CA, and during a rotation the
/// previous CA and the current CA signed by it.
const CA_PEM: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const PREVIOUS_PEM: &str = "previous-ca.pem";
const PREVIOUS_KEY: &str = "previous-ca.key";
const CROSS_PEM: &str = "cross-ca.pem";

/// Where the API's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsSource {
    /// Plain HTTP, for development only (the service says so in its log).
    #[default]
    Off,
    /// A local CA in the data dir, created on first start.
    LocalCa,
    /// The operator's PEM files.
    Files {
        /// The certificate chain, server certificate first.
        cert: PathBuf,
        /// The server's private key.
        key: PathBuf,
        /// CA certificates devices should trust (for `caArr`); when none are given, the
        /// chain's last certificate.
        ca: Vec<PathBuf>,
    },
}

/// What the API and the broker serve TLS with.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The rustls configuration of the API listener.
    pub server: Arc<rustls::ServerConfig>,
    /// The certificate chain's PEM file, for the broker (which reads files).
    pub cert_file: PathBuf,
    /// The private key's PEM file, for the broker.
    pub key_file: PathBuf,
    /// The CA certificates devices are told to trust, DER.
    pub cas: Vec<CertificateDer<'static>>,
}

impl Tls {
    /// Loads (or, for a local CA, creates) the TLS material; `None` when TLS is off.
    /// `names` are the DNS names and IP addresses a local CA's server certificate is
    /// valid for.
    pub fn load(
        source: &TlsSource,
        data_dir: &Path,
        names: &[String],
    ) -> anyhow::Result<Option<Self>> {
        let (chain, key, cas, (cert_file, key_file)) = match source {
            TlsSource::Off => return Ok(None),
            TlsSource::LocalCa => {
                let dir = data_dir.join(TLS_DIR);
                let (chain, key, cas) = local_ca(&dir, names)?;
                (
                    chain,
                    key,
                    cas,
                    (dir.join("server.pem"), dir.join("server.key")),
                )
            }
            TlsSource::Files { cert, key, ca } => {
                let (chain, key_der, cas) = from_files(cert, key, ca)?;
                (chain, key_der, cas, (cert.clone(), key.clone()))
            }
        };
        // The broker's TLS (rmqtt) asks rustls for the process's default provider; the
        // dependencies enable two, so this one is named once for all.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the TLS certificate does not match its key")?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            server: Arc::new(server),
            cert_file,
            key_file,
            cas,
        }))
    }

    /// The CA certificates as IoT DNS gives them: base64 of the DER.
    pub fn ca_arr(&self) -> Vec<String> {
        self.cas
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c.as_ref()))
            .collect()
    }
}

/// A client configuration that trusts the PEM CA certificates in `ca` and nothing else
/// (for `tether-service healthcheck --ca`).
pub fn client_trusting(ca: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate in {}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

type Material = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Vec<CertificateDer<'static>>,
);

fn from_files(cert: &Path, key: &Path, ca: &[PathBuf]) -> anyhow::Result<Material> {
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("no private key in {}", key.display()))?;
    let mut cas = Vec::new();
    for path in ca {
        cas.extend(read_certs(path)?);
    }
    if cas.is_empty() {
        cas.extend(chain.last().cloned());
    }
    Ok((chain, key, cas))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("failed to read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// Where a data dir's local CA certificate is: the file devices and clients trust.
pub fn local_ca_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TLS_DIR).join(CA_PEM)
}

/// The local CA certificate (PEM) of the data dir, created when missing: what devices
/// and clients of a service with a local CA must trust (`tether-service tls ca`).
pub fn local_ca_pem(data_dir: &Path) -> anyhow::Result<String> {
    Ok(load_or_create_ca(&data_dir.join(TLS_DIR))?.0)
}

/// The local CA in `dir`, created (with `dir`, owner-only) when missing.
fn load_or_create_ca(dir: &Path) -> anyhow::Result<(String, KeyPair)> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to restrict {}", dir.display()))?;
    match read_ca(dir)? {
        Some(ca) => Ok(ca),
        None => create_ca(dir),
    }
}

/// The current local CA in `dir` (certificate PEM and key), if both files are there.
fn read_ca(dir: &Path) -> anyhow::Result<Option<(String, KeyPair)>> {
    match (
        std::fs::read_to_string(dir.join(CA_PEM)),
        std::fs::read_to_string(dir.join(CA_KEY)),
    ) {
        (Ok(pem), Ok(key)) => Ok(Some((pem, KeyPair::from_pem(&key).context("tls/ca.key")?))),
        _ => Ok(None),
    }
}

/// The local CA in `dir` (created when missing) and a fresh server certificate from it.
fn local_ca(dir: &Path, names: &[String]) -> anyhow::Result<Material> {
    let (ca_pem, ca_key) = load_or_create_ca(dir)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).context("tls/ca.pem")?;
    let mut params = CertificateParams::new(names.to_vec()).context("the server's names")?;
    params.distinguished_name = name("Tether service");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, SERVER_DAYS);
    let key = KeyPair::generate().context("a server key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("the server certificate")?;
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).context("tls/ca.pem")?;
    // During a rotation the chain carries the current CA signed by the previous one.
    let (issuer_pem, cas) = match (
        std::fs::read_to_string(dir.join(CROSS_PEM)),
        std::fs::read_to_string(dir.join(PREVIOUS_PEM)),
    ) {
        (Ok(cross), Ok(previous)) => {
            let previous = CertificateDer::from_pem_slice(previous.as_bytes())
                .context("tls/previous-ca.pem")?;
            (cross, vec![ca, previous])
        }
        _ => (ca_pem, vec![ca]),
    };
    let issuer_der =
        CertificateDer::from_pem_slice(issuer_pem.as_bytes()).context("the CA in the chain")?;
    write_private(&dir.join("server.key"), key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join("server.pem"), cert.pem() + &issuer_pem)
        .context("failed to write tls/server.pem")?;
    let key =
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).context("the server key")?;
    Ok((vec![cert.der().clone(), issuer_der], key, cas))
}

/// Starts a rotation of the data dir's local CA: a new CA becomes current, the current
/// one is kept as the previous CA, and a cross certificate (the new CA signed by the
/// previous one) lets devices that trust only the previous CA verify the service. It
/// takes effect when the service next starts. Refused while a rotation is under way.
pub fn rotate_local_ca(data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join(TLS_DIR);
    if dir.join(PREVIOUS_PEM).exists() {
        bail!(
            "a rotation is under way: retire the previous CA first (tether-service tls retire-ca)"
        );
    }
    let Some((old_pem, old_key)) = read_ca(&dir)? else {
        bail!("no local CA in {} to rotate", dir.display());
    };
    let previous = Issuer::from_ca_cert_pem(&old_pem, &old_key).context("tls/ca.pem")?;
    let key = KeyPair::generate().context("a CA key")?;
    let params = ca_params();
    let cert = params.self_signed(&key).context("the CA certificate")?;
    let cross = params
        .signed_by(&key, &previous)
        .context("the cross certificate")?;
    // The previous CA first, so that an interruption leaves a state that starts: with no
    // cross certificate, the current CA alone is served.
    write_private(&dir.join(PREVIOUS_KEY), old_key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join(PREVIOUS_PEM), &old_pem).context("tls/previous-ca.pem")?;
    write_private(&dir.join(CA_KEY), key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join(CA_PEM), cert.pem()).context("tls/ca.pem")?;
    std::fs::write(dir.join(CROSS_PEM), cross.pem()).context("tls/cross-ca.pem")?;
    tracing::info!("rotated the local CA; the previous one stays trusted until it is retired");
    Ok(())
}

/// Ends a rotation: deletes the previous CA and the cross certificate. Devices that
/// never looked up IoT DNS during the overlap no longer trust the service once it
/// restarts. Refused when no rotation is under way.
pub fn retire_previous_ca(data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join(TLS_DIR);
    if !dir.join(PREVIOUS_PEM).exists() {
        bail!("no previous CA to retire in {}", dir.display());
    }
    for file in [CROSS_PEM, PREVIOUS_PEM, PREVIOUS_KEY] {
        match std::fs::remove_file(dir.join(file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("failed to delete tls/{file}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A new CA's certificate: named by its creation time (µs), so that the CAs of a rotation
/// differ by subject; path length 1, so that it may sign its successor's cross
/// certificate.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    // Seconds are not enough: a test may rotate within the second the CA was made.
    let created = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
    params.distinguished_name = name(&format!("Tether local CA {created}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_DAYS);
    params
}

fn create_ca(dir: &Path) -> anyhow::Result<(String, KeyPair)> {
    let key = KeyPair::generate().context("a CA key")?;
    let cert = ca_params()
        .self_signed(&key)
        .context("the CA certificate")?;
    write_private(&dir.join(CA_KEY), key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join(CA_PEM), cert.pem()).context("failed to write tls/ca.pem")?;
    tracing::info!(ca = %dir.join(CA_PEM).display(), "created a local CA; devices and clients must trust it");
    Ok((cert.pem(), key))
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back, for clocks a little behind.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// Writes a key readable by the owner alone.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests;
