//! Hot update of the pairing component: checking a signed bundle (signature, trusted key,
//! hash, world, host version, no downgrade, no replay) and the slots it is kept in. The
//! swap itself, with its probation and rollback, is in [`crate::home`].

pub(crate) mod remote;
pub mod slots;
pub(crate) mod watch;

use ed25519_dalek::VerifyingKey;
use tether_proto::bundle::{Bundle, BundleError};
use tether_proto::version::Version;

use std::time::{Duration, Instant};

use crate::capabilities::HostState;
use crate::runtime::{RuntimeError, WORLD};
use crate::{Instance, LoadedComponent, Runtime};

/// This host's version, compared with a bundle's `min_host_version`.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why an update was refused or rolled back. [`Refusal::name`] is the reason reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bundle itself failed its checks.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The component implements another world.
    #[error("the bundle is for {0}, this host runs {WORLD}")]
    WrongWorld(String),
    /// The bundle needs a newer host.
    #[error("the bundle needs tether-host {0} or newer, this is {HOST_VERSION}")]
    HostTooOld(String),
    /// Its version is lower than the running one.
    #[error("version {new} is older than the running {current}")]
    Downgrade {
        /// Offered.
        new: String,
        /// Running.
        current: String,
    },
    /// Its sequence is not above every sequence accepted before.
    #[error("sequence {new} was already passed (last accepted {last})")]
    Replayed {
        /// Offered.
        new: u64,
        /// Highest accepted.
        last: u64,
    },
    /// The bytes are not a component of the pairing world (a missing export, say).
    #[error("{0}")]
    Invalid(String),
    /// The new component failed while starting from the old one's state.
    #[error("the new component failed to start: {0}")]
    StartFailed(String),
    /// The new component reported itself unhealthy.
    #[error("the new component is unhealthy: {0}")]
    Unhealthy(String),
    /// It failed while on probation.
    #[error("the new component failed on probation: {0}")]
    FailedOnProbation(String),
    /// The host restarted while it was on probation.
    #[error("the host restarted while the new component was on probation")]
    HostRestarted,
    /// Another update is on probation.
    #[error("another update is on probation; try again when it has ended")]
    Busy,
    /// Storing it failed.
    #[error("cannot store the update: {0}")]
    Storage(String),
    /// A portable component reached a host without the compiler.
    #[error(
        "this host has no compiler and runs only code precompiled for {0} (tether module sign --target)"
    )]
    NeedsPrecompiled(String),
    /// Precompiled code reached a host with the compiler.
    #[error(
        "a host with the compiler takes only portable components, not code precompiled for {0}"
    )]
    PrecompiledRefused(String),
    /// Code precompiled for another target.
    #[error("the code is precompiled for {bundle}, this host is {host}")]
    WrongTarget {
        /// The bundle's.
        bundle: String,
        /// This host's.
        host: String,
    },
    /// Code precompiled for another engine.
    #[error("the code is precompiled for the {bundle} engine, this host runs {host}")]
    WrongEngine {
        /// The bundle's.
        bundle: String,
        /// This host's.
        host: String,
    },
    /// Code precompiled by another Wasmtime.
    #[error("the code is precompiled by {bundle}, this host runs {host}")]
    WrongRuntime {
        /// The bundle's.
        bundle: String,
        /// This host's.
        host: String,
    },
    /// The host has no trusted keys configured, so it accepts no update.
    #[error("no trusted keys are configured ([update] trusted_keys)")]
    NoTrustedKeys,
}

impl Refusal {
    /// Stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bundle(e) => e.name(),
            Self::WrongWorld(_) => "wrong_world",
            Self::HostTooOld(_) => "host_too_old",
            Self::Downgrade { .. } => "downgrade",
            Self::Replayed { .. } => "replayed",
            Self::Invalid(_) => "invalid_component",
            Self::StartFailed(_) => "start_failed",
            Self::Unhealthy(_) => "unhealthy",
            Self::FailedOnProbation(_) => "failed_on_probation",
            Self::HostRestarted => "host_restarted",
            Self::Busy => "busy",
            Self::Storage(_) => "storage",
            Self::NeedsPrecompiled(_) => "needs_precompiled",
            Self::PrecompiledRefused(_) => "precompiled_refused",
            Self::WrongTarget { .. } => "wrong_target",
            Self::WrongEngine { .. } => "wrong_engine",
            Self::WrongRuntime { .. } => "wrong_runtime",
            Self::NoTrustedKeys => "no_trusted_keys",
        }
    }

    /// The refusal for a runtime failure while the new component starts.
    pub fn start_failed(e: &RuntimeError) -> Self {
        Self::StartFailed(e.to_string())
    }
}

/// Replaces `running` by an instance of `next`: snapshot the running instance,
/// instantiate `next` over `state` (carrying the station state and request ids across),
/// `init` it from the snapshot, require `health`, and switch. Returns the time this took,
/// which is the time events wait. On any refusal `running` is untouched.
pub fn hand_over(
    runtime: &Runtime,
    running: &mut Instance,
    next: &LoadedComponent,
    state: HostState,
) -> Result<Duration, Refusal> {
    let started = Instant::now();
    let snapshot = running.snapshot().map_err(|e| {
        Refusal::StartFailed(format!("the running component gave no snapshot: {e}"))
    })?;
    let mut successor = runtime
        .instantiate(next, state)
        .map_err(|e| Refusal::start_failed(&e))?;
    successor.host().carry_from(running.host());
    successor
        .init(Some(&snapshot))
        .map_err(|e| Refusal::start_failed(&e))?
        .map_err(Refusal::StartFailed)?;
    successor
        .health()
        .map_err(|e| Refusal::start_failed(&e))?
        .map_err(Refusal::Unhealthy)?;
    *running = successor;
    Ok(started.elapsed())
}

/// Checks `bytes` as an update of a host running `current_version` that has accepted
/// sequences up to `last_sequence`, trusting `trusted`.
pub fn check(
    bytes: &[u8],
    trusted: &[VerifyingKey],
    current_version: &str,
    last_sequence: u64,
) -> Result<Bundle, Refusal> {
    if trusted.is_empty() {
        return Err(Refusal::NoTrustedKeys);
    }
    let bundle = Bundle::parse(bytes)?;
    bundle.verify(trusted)?;
    let m = &bundle.manifest;
    if m.world != WORLD {
        return Err(Refusal::WrongWorld(m.world.clone()));
    }
    let host = semver(HOST_VERSION)?;
    if semver(&m.min_host_version)? > host {
        return Err(Refusal::HostTooOld(m.min_host_version.clone()));
    }
    crate::platform::check(m, &crate::platform::this())?;
    check_order(&bundle, current_version, last_sequence)?;
    Ok(bundle)
}

fn semver(v: &str) -> Result<Version, Refusal> {
    Version::parse(v).map_err(|e| Refusal::Bundle(BundleError::Malformed(e.to_string())))
}

/// The part of [`check`] that depends on what the host ran and accepted before: no lower
/// version, no sequence at or below the highest accepted. Checked again at swap time,
/// since another update may have been accepted while this one was compiled.
pub fn check_order(
    bundle: &Bundle,
    current_version: &str,
    last_sequence: u64,
) -> Result<(), Refusal> {
    let m = &bundle.manifest;
    if semver(&m.version)? < semver(current_version)? {
        return Err(Refusal::Downgrade {
            new: m.version.clone(),
            current: current_version.to_owned(),
        });
    }
    if m.sequence <= last_sequence {
        return Err(Refusal::Replayed {
            new: m.sequence,
            last: last_sequence,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn bundle(version: &str, sequence: u64, world: &str, min_host: &str) -> Vec<u8> {
        let key = SigningKey::from_bytes(&[5; 32]);
        Bundle::sign(b"component", version, sequence, world, min_host, &key).expect("signs")
    }

    fn trusted() -> Vec<VerifyingKey> {
        vec![SigningKey::from_bytes(&[5; 32]).verifying_key()]
    }

    #[test]
    fn each_check_refuses_with_its_reason() {
        let ok = bundle("0.2.0", 3, WORLD, "0.1.0");
        assert!(check(&ok, &trusted(), "0.1.0", 2).is_ok());
        let reason = |bytes: &[u8], current: &str, last: u64, keys: &[VerifyingKey]| {
            check(bytes, keys, current, last)
                .map(|_| ())
                .map_err(|e| e.name())
        };
        assert_eq!(reason(&ok, "0.1.0", 2, &[]), Err("no_trusted_keys"));
        let other = [SigningKey::from_bytes(&[6; 32]).verifying_key()];
        assert_eq!(reason(&ok, "0.1.0", 2, &other), Err("untrusted_key"));
        assert_eq!(reason(&ok, "0.3.0", 2, &trusted()), Err("downgrade"));
        assert_eq!(reason(&ok, "0.1.0", 3, &trusted()), Err("replayed"));
        let world = bundle("0.2.0", 3, "other:world/w@1.0.0", "0.1.0");
        assert_eq!(reason(&world, "0.1.0", 2, &trusted()), Err("wrong_world"));
        let newer_host = bundle("0.2.0", 3, WORLD, "99.0.0");
        assert_eq!(
            reason(&newer_host, "0.1.0", 2, &trusted()),
            Err("host_too_old")
        );
        assert_eq!(reason(b"junk", "0.1.0", 2, &trusted()), Err("malformed"));
    }
}
