//! `tether module`: signing keys and signed bundles of pairing components.
//! `keygen` writes an ed25519 key pair; `sign` checks that a file is a component of the
//! pairing world, then writes a bundle of it with a signed manifest (version, sequence,
//! world, SHA-256, minimum host version), and with `--target` also one bundle of code
//! precompiled for each named target (for hosts without the compiler), all under one
//! sequence: the variants of one module.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tether_host::platform::{RUNTIME, engine_for, wasmtime_target};
use tether_proto::bundle::{Bundle, Precompiled, signing_key_from_hex};

use crate::failure::Failure;

/// Secret key file name inside the `keygen` output dir.
pub const SECRET_FILE: &str = "module.key";
/// Public key file name.
pub const PUBLIC_FILE: &str = "module.pub";

/// Writes a new key pair into `dir` (the secret with mode 0600); refuses to overwrite.
pub fn keygen(dir: &Path) -> Result<Value, Failure> {
    let io = |what: &str, e: std::io::Error| Failure::Other(format!("{what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io(&format!("cannot create {}", dir.display()), e))?;
    let secret_path = dir.join(SECRET_FILE);
    let public_path = dir.join(PUBLIC_FILE);
    if secret_path.exists() || public_path.exists() {
        return Err(Failure::Invalid(format!(
            "{} already holds a key pair; choose another --out",
            dir.display()
        )));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Failure::Other(format!("no randomness: {e}")))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = hex::encode(key.verifying_key().as_bytes());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(|e| io("cannot write the secret key", e))?;
    writeln!(file, "{}", hex::encode(key.to_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot write the secret key", e))?;
    std::fs::write(&public_path, format!("{public}\n"))
        .map_err(|e| io("cannot write the public key", e))?;
    Ok(json!({
        "secret_key": secret_path,
        "public_key": public_path,
        "public": public,
    }))
}

/// What `tether module sign` was asked for.
#[derive(Debug)]
pub struct SignRequest<'a> {
    /// The secret key file.
    pub key: &'a Path,
    /// Component version.
    pub version: &'a str,
    /// Sequence number; by default one more than the last one this key signed.
    pub sequence: Option<u64>,
    /// Oldest host that may run it.
    pub min_host_version: &'a str,
    /// The component file.
    pub component: &'a Path,
    /// Where the portable bundle goes; precompiled ones go next to it
    /// ([`variant_path`]).
    pub out: &'a Path,
    /// Targets to precompile for, as well.
    pub targets: &'a [String],
    /// Precompile for Pulley even where the target has native code.
    pub pulley: bool,
}

/// Where the bundle precompiled for `target` and `engine` goes: `NAME.TARGET.ENGINE.EXT`
/// next to the portable bundle `NAME.EXT`.
pub fn variant_path(out: &Path, target: &str, engine: &str) -> PathBuf {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let name = match out.extension() {
        Some(ext) => format!("{stem}.{target}.{engine}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{target}.{engine}"),
    };
    out.with_file_name(name)
}

/// Checks the component against the pairing world and writes the signed bundle.
pub fn sign(req: &SignRequest<'_>) -> Result<Value, Failure> {
    let key_text = std::fs::read_to_string(req.key)
        .map_err(|e| Failure::Invalid(format!("cannot read the key {}: {e}", req.key.display())))?;
    let key = signing_key_from_hex(&key_text).map_err(|e| Failure::Invalid(e.to_string()))?;
    let component = std::fs::read(req.component)
        .map_err(|e| Failure::Invalid(format!("cannot read {}: {e}", req.component.display())))?;
    check_component(&component)?;
    let counter = counter_path(req.key);
    let sequence = match req.sequence {
        Some(n) => n,
        None => read_counter(&counter)? + 1,
    };
    let sign = |code: &[u8], precompiled: Option<Precompiled>| {
        Bundle::sign_code(
            code,
            precompiled,
            req.version,
            sequence,
            tether_host::runtime::WORLD,
            req.min_host_version,
            &key,
        )
        .map_err(|e| Failure::Invalid(e.to_string()))
    };
    let bytes = sign(&component, None)?;
    let manifest = Bundle::parse(&bytes)
        .map_err(|e| Failure::Other(e.to_string()))?
        .manifest;
    let mut written = vec![(req.out.to_path_buf(), bytes)];
    for target in req.targets {
        let engine = engine_for(target, req.pulley);
        let code = tether_host::Runtime::precompile(
            tether_host::RuntimeConfig::default(),
            Some(&wasmtime_target(target, engine)),
            &component,
        )
        .map_err(|e| {
            Failure::Invalid(format!(
                "cannot precompile for {target} ({}): {e}",
                engine.name()
            ))
        })?;
        let precompiled = Precompiled {
            target: target.clone(),
            engine,
            runtime: RUNTIME.to_owned(),
            source_sha256: manifest.sha256.clone(),
        };
        let bytes = sign(&code, Some(precompiled))?;
        written.push((variant_path(req.out, target, engine.name()), bytes));
    }
    for (path, bytes) in &written {
        std::fs::write(path, bytes)
            .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
    }
    if sequence > read_counter(&counter)? {
        std::fs::write(&counter, format!("{sequence}\n"))
            .map_err(|e| Failure::Other(format!("cannot record the sequence: {e}")))?;
    }
    let precompiled: Vec<Value> = written[1..]
        .iter()
        .map(|(path, bytes)| {
            let m = Bundle::parse(bytes).map(|b| b.manifest).ok();
            json!({"bundle": path, "size": bytes.len(), "precompiled": m.and_then(|m| m.precompiled)})
        })
        .collect();
    Ok(json!({"bundle": req.out, "manifest": manifest, "precompiled": precompiled}))
}

/// Loads the component in the host's runtime: it must be a component of the pairing
/// world before it is signed.
fn check_component(bytes: &[u8]) -> Result<(), Failure> {
    let runtime = tether_host::Runtime::new(tether_host::RuntimeConfig::default())
        .map_err(|e| Failure::Other(e.to_string()))?;
    runtime.load(bytes).map(|_| ()).map_err(|e| {
        Failure::Invalid(format!(
            "not signed: the file is not a component of {}: {e}",
            tether_host::runtime::WORLD
        ))
    })
}

/// The last sequence a key signed lives next to it.
fn counter_path(key: &Path) -> PathBuf {
    let mut name = key.file_name().unwrap_or_default().to_os_string();
    name.push(".sequence");
    key.with_file_name(name)
}

fn read_counter(path: &Path) -> Result<u64, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| Failure::Invalid(format!("{} does not hold a number", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Failure::Other(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}
