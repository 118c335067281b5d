//! What code a device host can run, as it says on every request to the cloud (the
//! `Tether-Platform` header) and as precompiled bundles name it: its target triple, its
//! engine (native code or Wasmtime's Pulley interpreter), whether it carries the compiler,
//! and the Wasmtime version it runs (precompiled code loads only into the same one).
//!
//! Header form: `target=aarch64-unknown-linux-musl; engine=native; compiler=no;
//! runtime=wasmtime-48.0.8`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The HTTP header a host sends its platform in.
pub const HEADER: &str = "tether-platform";

/// How a host runs component code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Machine code for the host's CPU (Cranelift).
    Native,
    /// Bytecode for Wasmtime's portable interpreter, Pulley: any CPU, no code generator
    /// on the device (32-bit ARM has no Cranelift backend, so it always uses Pulley).
    Pulley,
}

impl Engine {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Pulley => "pulley",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "native" => Some(Self::Native),
            "pulley" => Some(Self::Pulley),
            _ => None,
        }
    }
}

/// A device host's platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// The target triple the host was built for.
    pub target: String,
    /// How it runs component code.
    pub engine: Engine,
    /// Whether it compiles components itself (and so takes only portable ones).
    pub compiler: bool,
    /// `wasmtime-VERSION`.
    pub runtime: String,
}

/// Why a `Tether-Platform` header was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a platform (target=…; engine=native|pulley; compiler=yes|no; runtime=…): {0}")]
pub struct PlatformError(String);

/// Longest header accepted.
const MAX_LEN: usize = 256;

impl Platform {
    /// Reads the header form.
    pub fn parse(text: &str) -> Result<Self, PlatformError> {
        let bad = |why: &str| PlatformError(why.to_owned());
        if text.len() > MAX_LEN {
            return Err(bad("too long"));
        }
        let (mut target, mut engine, mut compiler, mut runtime) = (None, None, None, None);
        for part in text.split(';') {
            let (key, value) = part.trim().split_once('=').ok_or_else(|| bad(part))?;
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
                return Err(bad(part));
            }
            match key.trim() {
                "target" => target = Some(value.to_owned()),
                "engine" => engine = Some(Engine::parse(value).ok_or_else(|| bad(value))?),
                "compiler" => {
                    compiler = Some(match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(bad(value)),
                    })
                }
                "runtime" => runtime = Some(value.to_owned()),
                other => return Err(bad(other)),
            }
        }
        Ok(Self {
            target: target.ok_or_else(|| bad("no target"))?,
            engine: engine.ok_or_else(|| bad("no engine"))?,
            compiler: compiler.ok_or_else(|| bad("no compiler"))?,
            runtime: runtime.ok_or_else(|| bad("no runtime"))?,
        })
    }

    /// What bundle this host takes: `None` for a portable component (a host with the
    /// compiler), or the target and engine precompiled code must be for.
    pub fn wants(&self) -> Option<(&str, Engine)> {
        (!self.compiler).then_some((self.target.as_str(), self.engine))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target={}; engine={}; compiler={}; runtime={}",
            self.target,
            self.engine.name(),
            if self.compiler { "yes" } else { "no" },
            self.runtime
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_arm() -> Platform {
        Platform {
            target: "armv7-unknown-linux-gnueabihf".into(),
            engine: Engine::Pulley,
            compiler: false,
            runtime: "wasmtime-48.0.8".into(),
        }
    }

    #[test]
    fn the_header_form_round_trips() {
        let p = small_arm();
        let text = p.to_string();
        assert_eq!(
            text,
            "target=armv7-unknown-linux-gnueabihf; engine=pulley; compiler=no; runtime=wasmtime-48.0.8"
        );
        assert_eq!(Platform::parse(&text), Ok(p.clone()));
        assert_eq!(
            p.wants(),
            Some(("armv7-unknown-linux-gnueabihf", Engine::Pulley))
        );
    }

    #[test]
    fn hostile_headers_are_refused() {
        for text in [
            "",
            "target=x",
            "target=x; engine=jit; compiler=no; runtime=w",
            "target=x; engine=native; compiler=maybe; runtime=w",
            "target=x; engine=native; compiler=no; runtime=w; extra=1",
            "target=; engine=native; compiler=no; runtime=w",
            "target=a b; engine=native; compiler=no; runtime=w",
        ] {
            assert!(Platform::parse(text).is_err(), "{text}");
        }
        assert!(Platform::parse(&"target=x;".repeat(100)).is_err());
    }
}
