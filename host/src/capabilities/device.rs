//! The device's factory identity, the signing of cloud requests and the cloud endpoints
//! the component found. The authkey lives only here: the component asks for signatures
//! and never sees it. The dev-secret comes from the component (`set-binding`, after
//! activation) and is kept here; the endpoints too (`set-endpoints`), so the host's own
//! cloud requests depend on the WIT contract and nothing else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::signing::{self, AuthHeader, Principal};
use tether_proto::{ErrorCode, Secret};

use crate::atomic_file;

/// Identity written into the device at the factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// License uuid.
    pub uuid: String,
    /// Product key.
    pub product_key: String,
    /// Secret that signs activation.
    pub authkey: Secret,
    /// The factory-set IoT DNS base URL.
    pub iot_dns_url: String,
    /// The verifier of the setup code on the label (`spake2p1:…`).
    pub pairing_verifier: Option<String>,
    /// The development switch: the data channel also serves plaintext protocol 1.
    pub plaintext_channel: bool,
}

/// What activation bound the device to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Binding {
    dev_id: String,
    dev_secret: Secret,
}

/// The cloud endpoints the component got from IoT DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEndpoints {
    /// API base URL.
    pub http_url: String,
    /// Broker address.
    pub mqtt_url: String,
    /// The CA certificates (base64 DER) IoT DNS delivered for them.
    #[serde(default)]
    pub ca: Vec<String>,
}

/// Which secret signs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The factory authkey.
    Authkey,
    /// The dev-secret from activation.
    DevSecret,
}

/// Holds the device's secrets and signs with them.
#[derive(Debug)]
pub struct Signer {
    identity: Option<DeviceIdentity>,
    binding: Option<Binding>,
    /// Where the binding is kept; `None` keeps it in memory only.
    binding_path: Option<PathBuf>,
    endpoints: Option<CloudEndpoints>,
    /// Where the endpoints are kept; `None` keeps them in memory only.
    endpoints_path: Option<PathBuf>,
}

impl Signer {
    /// A signer for `identity` (none for a host that has not been provisioned at the
    /// factory, which can then sign nothing), keeping its binding at `binding_path`.
    pub fn new(
        identity: Option<DeviceIdentity>,
        binding_path: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            identity,
            binding: read_record(binding_path.as_deref())?,
            binding_path,
            endpoints: None,
            endpoints_path: None,
        })
    }

    /// Keeps the endpoints in the file at `path` (and reads them from it now).
    pub fn with_endpoints_file(mut self, path: PathBuf) -> std::io::Result<Self> {
        self.endpoints = read_record(Some(&path))?;
        self.endpoints_path = Some(path);
        Ok(self)
    }

    /// The endpoints the component stored, if any.
    pub fn endpoints(&self) -> Option<&CloudEndpoints> {
        self.endpoints.as_ref()
    }

    /// Stores the endpoints, durably when a path is configured.
    pub fn set_endpoints(&mut self, endpoints: CloudEndpoints) -> Result<(), ErrorCode> {
        write_record(
            self.endpoints_path.as_deref(),
            Some(&endpoints),
            "endpoints",
        )?;
        self.endpoints = Some(endpoints);
        Ok(())
    }

    /// The identity, if the device has one.
    pub fn identity(&self) -> Option<&DeviceIdentity> {
        self.identity.as_ref()
    }

    /// The dev-id of the stored binding.
    pub fn dev_id(&self) -> Option<&str> {
        self.binding.as_ref().map(|b| b.dev_id.as_str())
    }

    /// Stores or forgets the binding, durably when a path is configured.
    pub fn set_binding(&mut self, binding: Option<(String, Secret)>) -> Result<(), ErrorCode> {
        let binding = binding.map(|(dev_id, dev_secret)| Binding { dev_id, dev_secret });
        write_record(self.binding_path.as_deref(), binding.as_ref(), "binding")?;
        self.binding = binding;
        Ok(())
    }

    /// The `Authorization` header value for a request, signed now with a fresh nonce.
    pub fn sign_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        key: Key,
    ) -> Result<String, ErrorCode> {
        let (principal, secret) = match key {
            Key::Authkey => {
                let id = self.identity.as_ref().ok_or(ErrorCode::Internal)?;
                (Principal::Uuid(id.uuid.clone()), &id.authkey)
            }
            Key::DevSecret => {
                let b = self.binding.as_ref().ok_or(ErrorCode::InvalidParm)?;
                (Principal::DevId(b.dev_id.clone()), &b.dev_secret)
            }
        };
        let nonce = signing::new_nonce().map_err(|_| ErrorCode::Internal)?;
        let t = crate::clock::unix_secs();
        let header = AuthHeader::sign(
            principal,
            secret.expose().as_bytes(),
            t,
            nonce,
            method,
            path,
            body,
        );
        Ok(header.to_string())
    }
}

/// A JSON record from `path`; a missing file, no path or an unreadable record is none.
fn read_record<T: serde::de::DeserializeOwned>(path: Option<&Path>) -> std::io::Result<Option<T>> {
    match path.map(std::fs::read) {
        Some(Ok(bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

/// Replaces (or, with none, removes) the record at `path` atomically, mode 0600.
fn write_record<T: Serialize>(
    path: Option<&Path>,
    record: Option<&T>,
    what: &str,
) -> Result<(), ErrorCode> {
    let Some(path) = path else {
        return Ok(());
    };
    let written = match record {
        Some(r) => {
            let bytes = serde_json::to_vec(r).map_err(|_| ErrorCode::Internal)?;
            atomic_file::write(path, &bytes, 0o600)
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    };
    written.map_err(|e| {
        tracing::error!(error = %e, "failed to store the device {what}");
        ErrorCode::Internal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> DeviceIdentity {
        DeviceIdentity {
            pairing_verifier: None,
            plaintext_channel: false,
            uuid: "tether0123456789abcd".into(),
            product_key: "p0123456789abcde".into(),
            authkey: Secret::new("0123456789abcdef0123456789abcdef"),
            iot_dns_url: "http://127.0.0.1:8080".into(),
        }
    }

    #[test]
    fn requests_signed_with_the_authkey_verify_with_it() {
        let signer = Signer::new(Some(identity()), None).expect("no file to read");
        let value = signer
            .sign_request("POST", "/v1/devices/activate", b"{}", Key::Authkey)
            .expect("signs");
        let header = AuthHeader::parse(&value).expect("well formed");
        assert_eq!(
            header.principal,
            Principal::Uuid("tether0123456789abcd".into())
        );
        let key = b"0123456789abcdef0123456789abcdef";
        assert_eq!(
            header.verify(
                key,
                "POST",
                "/v1/devices/activate",
                b"{}",
                crate::clock::unix_secs()
            ),
            Ok(())
        );
    }

    #[test]
    fn signing_needs_the_matching_secret() {
        let signer = Signer::new(None, None).expect("no file to read");
        assert_eq!(
            signer.sign_request("GET", "/", b"", Key::Authkey),
            Err(ErrorCode::Internal)
        );
        assert_eq!(
            signer.sign_request("GET", "/", b"", Key::DevSecret),
            Err(ErrorCode::InvalidParm)
        );
    }

    #[test]
    fn the_binding_persists_with_mode_0600_and_signs_as_the_dev_id() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("binding.json");
        let mut signer = Signer::new(Some(identity()), Some(path.clone())).expect("opens");
        signer
            .set_binding(Some(("d-1".into(), Secret::new("devsecret"))))
            .expect("stored");
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let reopened = Signer::new(Some(identity()), Some(path.clone())).expect("reopens");
        assert_eq!(reopened.dev_id(), Some("d-1"));
        let value = reopened
            .sign_request("POST", "/x", b"", Key::DevSecret)
            .expect("signs");
        let header = AuthHeader::parse(&value).expect("well formed");
        assert_eq!(header.principal, Principal::DevId("d-1".into()));
        assert_eq!(
            header.verify(b"devsecret", "POST", "/x", b"", crate::clock::unix_secs()),
            Ok(())
        );

        let mut reopened = reopened;
        reopened.set_binding(None).expect("forgotten");
        assert!(!path.exists());
        assert_eq!(reopened.dev_id(), None);
    }

    #[test]
    fn endpoints_persist_in_their_own_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("endpoints.json");
        let mut signer = Signer::new(None, None)
            .and_then(|s| s.with_endpoints_file(path.clone()))
            .expect("opens");
        assert_eq!(signer.endpoints(), None);
        let endpoints = CloudEndpoints {
            http_url: "https://api:8443".into(),
            mqtt_url: "broker:8883".into(),
            ca: vec!["MIIBca".into()],
        };
        signer.set_endpoints(endpoints.clone()).expect("stored");
        let reopened = Signer::new(None, None)
            .and_then(|s| s.with_endpoints_file(path.clone()))
            .expect("reopens");
        assert_eq!(reopened.endpoints(), Some(&endpoints));
    }
}
