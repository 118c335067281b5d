//! What the device's instances are built from, and how that changes at run time: the
//! runtime, the component in use (the built-in one or an installed bundle), and hot
//! update. An update is checked, compiled (or loaded from the compile cache), then
//! swapped in: the running instance's snapshot is restored into the new one, which must
//! pass `health`, and only then replaces it. It then runs on probation; a failure in that
//! time rolls back to the previous component, and a clean probation commits it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use tether_proto::bundle::Bundle;
use tether_proto::module::{ModuleStatus, UpdateReport, UpdateResult};

use crate::capabilities::{Kv, Signer};
use crate::component::DEFAULT_COMPONENT_VERSION;
use crate::config::HostConfig;
use crate::update::slots::{Installed, Outcome, Slots, SlotsFile};
use crate::update::{self, Refusal};
use crate::{Instance, LoadedComponent, Runtime, RuntimeConfig};

/// A checked bundle, compiled off the instance thread, ready to swap in.
pub(crate) struct Prepared {
    /// The bundle.
    pub bundle: Bundle,
    /// Its bytes, kept in the slots once swapped in.
    pub bytes: Vec<u8>,
    /// The compiled component.
    pub loaded: LoadedComponent,
    /// When the bundle arrived.
    pub started: Instant,
    /// Check and compile time.
    pub prepare: Duration,
}

/// Where a device's runtime comes from.
#[derive(Debug)]
pub enum RuntimeSource {
    /// Its own runtime, with the compile cache in its data dir: what a board runs.
    Own(RuntimeConfig),
    /// A runtime and built-in component shared by many devices in one process (fleet
    /// simulation); the runtime needs an instance slot per device and spare ones for updates.
    Shared(SharedRuntime),
}

/// A runtime with the built-in component compiled once, for many devices.
#[derive(Debug, Clone)]
pub struct SharedRuntime {
    runtime: Arc<Runtime>,
    builtin: LoadedComponent,
}

impl SharedRuntime {
    /// Starts a runtime and compiles the built-in component in it.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let runtime = Arc::new(Runtime::new(config).context("failed to start the runtime")?);
        let (builtin, _) = builtin(&runtime, None)?;
        Ok(Self { runtime, builtin })
    }
}

/// A component on probation, with what to go back to.
struct Probation {
    until: Instant,
    previous: LoadedComponent,
    previous_version: String,
}

/// The component source of one device.
pub(crate) struct Home {
    config: HostConfig,
    runtime: Arc<Runtime>,
    component: LoadedComponent,
    version: String,
    trusted: Vec<VerifyingKey>,
    modules: PathBuf,
    slots: Slots,
    /// Why `state.json` could not be read at boot: updates are refused while it is set.
    state_error: Option<String>,
    probation: Option<Probation>,
    last_swap: Option<UpdateReport>,
}

impl Home {
    /// The runtime (with its compile cache in the data dir) and the component to run:
    /// the active installed bundle, else the built-in one. A probation interrupted by a
    /// restart ends here as a rollback.
    pub fn boot(config: HostConfig, source: RuntimeSource) -> anyhow::Result<Self> {
        let (runtime, builtin_loaded) = match source {
            RuntimeSource::Own(runtime_config) => {
                (Arc::new(own_runtime(&config, runtime_config)?), None)
            }
            RuntimeSource::Shared(shared) => (shared.runtime, Some(shared.builtin)),
        };
        let file = config.component.clone();
        let builtin = |runtime: &Runtime| match &builtin_loaded {
            Some(loaded) => Ok((loaded.clone(), DEFAULT_COMPONENT_VERSION.to_owned())),
            None => builtin(runtime, file.as_deref()),
        };
        let trusted = config.update.keys()?;
        let modules = config.data_dir.join("modules");
        // An unreadable state must not lower the replay floor: updates stay refused
        // (and the state file untouched) until someone repairs or removes it.
        let (mut slots, state_error) = match Slots::load(&modules) {
            Ok(slots) => (slots, None),
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(error = %why, "update state unreadable; running the built-in component and refusing updates");
                (Slots::default(), Some(why))
            }
        };
        if let Some(interrupted) = slots.probation.take() {
            tracing::warn!(version = %interrupted.version, "the host restarted during probation; rolling back");
            slots.last_outcome = Some(outcome(
                &interrupted,
                UpdateResult::RolledBack,
                Some(&Refusal::HostRestarted),
            ));
            slots
                .save(&modules)
                .context("failed to record the rollback")?;
            slots.prune(&modules);
        }
        let (component, version) = match slots.active.clone() {
            Some(active) => match load_installed(&runtime, &trusted, &modules, &active) {
                Ok(loaded) => (loaded, active.version),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), version = %active.version, "cannot load the installed component; running the built-in one");
                    builtin(&runtime)?
                }
            },
            None => builtin(&runtime)?,
        };
        Ok(Self {
            config,
            runtime,
            component,
            version,
            trusted,
            modules,
            slots,
            state_error,
            probation: None,
            last_swap: None,
        })
    }

    /// An instance booted from `kv`, as after a reboot.
    pub fn fresh(&self) -> anyhow::Result<Instance> {
        let mut instance = self
            .runtime
            .instantiate(&self.component, self.host_state()?)?;
        instance
            .init(None)?
            .map_err(|e| anyhow::anyhow!("the component refused to start: {e}"))?;
        Ok(instance)
    }

    fn host_state(&self) -> anyhow::Result<crate::capabilities::HostState> {
        let kv =
            Kv::open(&self.config.data_dir.join("kv")).context("failed to open the kv store")?;
        let binding: PathBuf = self.config.data_dir.join("binding.json");
        let signer = Signer::new(Some(self.config.device_identity()), Some(binding))
            .context("failed to read the binding")?
            .with_endpoints_file(self.config.data_dir.join("endpoints.json"))
            .context("failed to read the endpoints")?;
        Ok(self.runtime.host_state(kv, signer))
    }

    /// Checks `bytes` as an update (signature, key, hash, world, versions, sequence).
    /// A refusal is recorded as the last outcome.
    pub fn check(&mut self, bytes: &[u8]) -> Result<(Bundle, Arc<Runtime>), Refusal> {
        let checked = if let Some(why) = &self.state_error {
            Err(Refusal::Storage(format!(
                "the update state is unreadable: {why}"
            )))
        } else if self.probation.is_some() {
            Err(Refusal::Busy)
        } else {
            update::check(
                bytes,
                &self.trusted,
                &self.version,
                self.slots.last_sequence,
            )
        };
        match checked {
            Ok(bundle) => Ok((bundle, self.runtime.clone())),
            Err(refusal) => Err(self.refused(bytes, refusal)),
        }
    }

    /// Records a refusal of `bytes` as the last outcome and gives it back.
    pub fn refused(&mut self, bytes: &[u8], refusal: Refusal) -> Refusal {
        tracing::warn!(reason = refusal.name(), error = %refusal, "update refused");
        let (version, sequence) = Bundle::parse(bytes)
            .map(|b| (b.manifest.version, b.manifest.sequence))
            .unwrap_or_default();
        let about = Installed {
            version,
            sequence,
            sha256: String::new(),
        };
        self.slots.last_outcome = Some(outcome(&about, UpdateResult::Refused, Some(&refusal)));
        if self.state_error.is_some() {
            return refusal;
        }
        if let Err(e) = self.slots.save(&self.modules) {
            tracing::error!(error = %e, "failed to record the refusal");
        }
        refusal
    }

    /// Swaps the prepared component in under `instance`: snapshot, restore into the new
    /// instance, health, switch. Events wait in the queue only for this. On any refusal
    /// the running instance is untouched.
    pub fn swap(
        &mut self,
        instance: &mut Instance,
        prepared: Prepared,
    ) -> Result<UpdateReport, Refusal> {
        let Prepared {
            bundle,
            bytes,
            loaded,
            started,
            prepare,
        } = prepared;
        match self.try_swap(instance, &bundle, loaded) {
            Ok(pause) => {
                let m = &bundle.manifest;
                let installed = Installed {
                    version: m.version.clone(),
                    sequence: m.sequence,
                    sha256: m.sha256.clone(),
                };
                // A crash from here on boots the previous component; the marker lets the
                // next boot record that as a rollback.
                if let Err(e) = Slots::store_bundle(&self.modules, &m.sha256, &bytes) {
                    tracing::error!(error = %e, "failed to keep the bundle");
                }
                self.slots.probation = Some(installed.clone());
                self.slots.last_sequence = m.sequence;
                self.slots.last_outcome = Some(outcome(&installed, UpdateResult::Probation, None));
                if let Err(e) = self.slots.save(&self.modules) {
                    tracing::error!(error = %e, "failed to record the probation");
                }
                let report = UpdateReport {
                    version: m.version.clone(),
                    sequence: m.sequence,
                    prepare_ms: millis(prepare),
                    pause_us: u64::try_from(pause.as_micros()).unwrap_or(u64::MAX),
                    total_ms: millis(started.elapsed()),
                    probation_secs: self.config.update.probation_secs,
                };
                tracing::info!(version = %report.version, pause_us = report.pause_us, total_ms = report.total_ms, "component swapped; on probation");
                self.last_swap = Some(report.clone());
                Ok(report)
            }
            Err(refusal) => Err(self.refused(&bytes, refusal)),
        }
    }

    fn try_swap(
        &mut self,
        instance: &mut Instance,
        bundle: &Bundle,
        loaded: LoadedComponent,
    ) -> Result<Duration, Refusal> {
        if self.probation.is_some() {
            return Err(Refusal::Busy);
        }
        // Another update may have been swapped in while this one compiled.
        update::check_order(bundle, &self.version, self.slots.last_sequence)?;
        // The new instance's host state reads the kv dir and the binding from disk: done
        // before the pause, as nothing in them changes while the old instance runs on.
        let state = self
            .host_state()
            .map_err(|e| Refusal::Storage(format!("{e:#}")))?;
        let pause = update::hand_over(&self.runtime, instance, &loaded, state)?;
        self.probation = Some(Probation {
            until: Instant::now() + Duration::from_secs(self.config.update.probation_secs),
            previous: std::mem::replace(&mut self.component, loaded),
            previous_version: std::mem::replace(&mut self.version, bundle.manifest.version.clone()),
        });
        Ok(pause)
    }

    /// Called about once a second: checks the health of a component on probation, and
    /// commits it once its probation is over.
    pub fn tick(&mut self, instance: &mut Instance) -> anyhow::Result<()> {
        let Some(probation) = &self.probation else {
            return Ok(());
        };
        let until = probation.until;
        let problem = match instance.health() {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(format!("health check failed: {why}")),
            Err(e) => Some(e.to_string()),
        };
        match problem {
            Some(why) => *instance = self.roll_back(Some(instance), &why)?,
            None if Instant::now() >= until => self.commit(),
            None => {}
        }
        Ok(())
    }

    /// The instance failed. On probation that rolls the update back; otherwise the same
    /// component starts again from its stored state.
    pub fn recover(
        &mut self,
        instance: &mut Instance,
        error: &crate::RuntimeError,
    ) -> anyhow::Result<()> {
        *instance = if self.probation.is_some() {
            self.roll_back(Some(instance), &error.to_string())?
        } else {
            self.fresh()?
        };
        Ok(())
    }

    fn commit(&mut self) {
        let Some(done) = self.slots.probation.take() else {
            return;
        };
        self.probation = None;
        self.slots.previous = self.slots.active.replace(done.clone());
        self.slots.last_outcome = Some(outcome(&done, UpdateResult::Applied, None));
        match self.slots.save(&self.modules) {
            Ok(()) => tracing::info!(version = %done.version, "update committed after probation"),
            Err(e) => tracing::error!(error = %e, "failed to commit the update"),
        }
        self.slots.prune(&self.modules);
    }

    /// Goes back to the previous component: from the failing instance's snapshot when it
    /// can still give one, else from `kv`.
    fn roll_back(&mut self, failing: Option<&mut Instance>, why: &str) -> anyhow::Result<Instance> {
        let Some(probation) = self.probation.take() else {
            return self.fresh();
        };
        let refusal = Refusal::FailedOnProbation(why.to_owned());
        tracing::warn!(error = %refusal, version = %self.version, back_to = %probation.previous_version, "rolling back");
        self.component = probation.previous;
        self.version = probation.previous_version;
        if let Some(failed) = self.slots.probation.take() {
            self.slots.last_outcome =
                Some(outcome(&failed, UpdateResult::RolledBack, Some(&refusal)));
        }
        self.slots
            .save(&self.modules)
            .context("failed to record the rollback")?;
        self.slots.prune(&self.modules);
        let snapshot = failing.and_then(|i| i.snapshot().ok());
        if let Some(snapshot) = snapshot {
            let mut back = self
                .runtime
                .instantiate(&self.component, self.host_state()?)?;
            if matches!(back.init(Some(&snapshot)), Ok(Ok(()))) {
                return Ok(back);
            }
        }
        self.fresh()
    }

    /// The version in use, the slots, the last outcome and the last swap's measures, for
    /// `ctl module status`.
    pub fn module_status(&self) -> ModuleStatus {
        ModuleStatus {
            version: self.version.clone(),
            on_probation: self.probation.is_some(),
            slots: self.slots.clone(),
            last_swap: self.last_swap.clone(),
            load_ms: millis(self.component.compile_time),
        }
    }

    /// The last update outcome recorded.
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.slots.last_outcome.as_ref()
    }
}

/// A device's own runtime; a host with the compiler keeps compiled code in the data dir.
fn own_runtime(config: &HostConfig, runtime_config: RuntimeConfig) -> anyhow::Result<Runtime> {
    #[cfg(feature = "compiler")]
    let runtime = Runtime::with_cache(runtime_config, &config.data_dir.join("cache"));
    #[cfg(not(feature = "compiler"))]
    let runtime = {
        let _ = config;
        Runtime::new(runtime_config)
    };
    runtime.context("failed to start the runtime")
}

/// What a device runs when no update is installed: the config's `component` file, else
/// the component built into this host. Either is reported with the built-in version.
fn builtin(runtime: &Runtime, file: Option<&Path>) -> anyhow::Result<(LoadedComponent, String)> {
    let loaded = match file {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            runtime.load(&bytes).with_context(|| {
                format!("failed to load the pairing component {}", path.display())
            })?
        }
        None => runtime
            .load(crate::component::builtin()?)
            .context("failed to load the pairing component")?,
    };
    Ok((loaded, DEFAULT_COMPONENT_VERSION.to_owned()))
}

/// An installed bundle, checked again (signature and hash) before it runs.
fn load_installed(
    runtime: &Runtime,
    trusted: &[VerifyingKey],
    modules: &Path,
    installed: &Installed,
) -> anyhow::Result<LoadedComponent> {
    let path = Slots::bundle_path(modules, &installed.sha256);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let bundle = Bundle::parse(&bytes)?;
    bundle.verify(trusted)?;
    anyhow::ensure!(
        bundle.manifest.sha256 == installed.sha256,
        "the bundle file was replaced"
    );
    Ok(runtime.load(&bundle.component)?)
}

fn outcome(about: &Installed, result: UpdateResult, refusal: Option<&Refusal>) -> Outcome {
    Outcome {
        version: about.version.clone(),
        sequence: about.sequence,
        result,
        reason: refusal.map(|r| format!("{}: {r}", r.name())),
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "home_tests.rs"]
mod tests;
