//! This host's platform ([`tether_proto::platform`]): the target it was built for, how it
//! runs components (Pulley where Cranelift has no backend or the `pulley` feature asks for
//! it), whether it has the compiler, and its Wasmtime. It is sent on every request to the
//! cloud and decides which bundles the host takes ([`check`]).

use tether_proto::bundle::Manifest;
use tether_proto::platform::{Engine, Platform};

use crate::update::Refusal;

/// The target triple this host was built for.
pub const TARGET: &str = env!("TETHER_HOST_TARGET");
/// `wasmtime-VERSION` of the runtime linked in.
pub const RUNTIME: &str = concat!("wasmtime-", env!("TETHER_WASMTIME_VERSION"));

/// How this host runs component code: the engine [`engine_for`] its own target, Pulley
/// too when built with the `pulley` feature.
pub fn engine() -> Engine {
    engine_for(TARGET, cfg!(feature = "pulley"))
}

/// Whether this host compiles components itself.
pub const COMPILER: bool = cfg!(feature = "compiler");

/// This host's platform.
pub fn this() -> Platform {
    Platform {
        target: TARGET.to_owned(),
        engine: engine(),
        compiler: COMPILER,
        runtime: RUNTIME.to_owned(),
    }
}

/// The engine code for `triple` is compiled for: Pulley when asked for or where Cranelift
/// has no backend for the CPU, native code otherwise.
pub fn engine_for(triple: &str, prefer_pulley: bool) -> Engine {
    let arch = triple.split('-').next().unwrap_or_default();
    if prefer_pulley || !["x86_64", "aarch64", "riscv64", "riscv64gc", "s390x"].contains(&arch) {
        Engine::Pulley
    } else {
        Engine::Native
    }
}

/// The Wasmtime target that code for `engine` on `triple` is compiled for: the triple
/// itself for native code, Pulley of the triple's pointer width for the interpreter.
pub fn wasmtime_target(triple: &str, engine: Engine) -> String {
    match engine {
        Engine::Native => triple.to_owned(),
        Engine::Pulley if is_32_bit(triple) => "pulley32".to_owned(),
        Engine::Pulley => "pulley64".to_owned(),
    }
}

fn is_32_bit(triple: &str) -> bool {
    let arch = triple.split('-').next().unwrap_or_default();
    arch.starts_with("arm")
        || arch.starts_with("thumb")
        || [
            "i386", "i586", "i686", "riscv32", "mips", "mipsel", "powerpc",
        ]
        .iter()
        .any(|a| arch.starts_with(a) && !arch.contains("64"))
}

/// Whether `platform` can run the bundle `manifest` describes: a host with the compiler
/// takes only portable components (never native code from outside), a host without it
/// only code precompiled for its own target, engine and Wasmtime.
pub fn check(manifest: &Manifest, platform: &Platform) -> Result<(), Refusal> {
    let ours = format!("{}/{}", platform.target, platform.engine.name());
    match (&manifest.precompiled, platform.compiler) {
        (None, true) => Ok(()),
        (None, false) => Err(Refusal::NeedsPrecompiled(ours)),
        (Some(code), true) => Err(Refusal::PrecompiledRefused(format!(
            "{}/{}",
            code.target,
            code.engine.name()
        ))),
        (Some(code), false) if code.target != platform.target => Err(Refusal::WrongTarget {
            bundle: code.target.clone(),
            host: platform.target.clone(),
        }),
        (Some(code), false) if code.engine != platform.engine => Err(Refusal::WrongEngine {
            bundle: code.engine.name().to_owned(),
            host: platform.engine.name().to_owned(),
        }),
        (Some(code), false) if code.runtime != platform.runtime => Err(Refusal::WrongRuntime {
            bundle: code.runtime.clone(),
            host: platform.runtime.clone(),
        }),
        (Some(_), false) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use tether_proto::bundle::Precompiled;

    use super::*;

    fn manifest(precompiled: Option<Precompiled>) -> Manifest {
        Manifest {
            version: "0.2.0".into(),
            sequence: 2,
            world: crate::runtime::WORLD.into(),
            sha256: "aa".into(),
            size: 1,
            min_host_version: "0.1.0".into(),
            key: "bb".into(),
            precompiled,
        }
    }

    fn code(target: &str, engine: Engine, runtime: &str) -> Option<Precompiled> {
        Some(Precompiled {
            target: target.into(),
            engine,
            runtime: runtime.into(),
            source_sha256: "aa".into(),
        })
    }

    fn board(compiler: bool) -> Platform {
        Platform {
            target: "aarch64-unknown-linux-musl".into(),
            engine: Engine::Native,
            compiler,
            runtime: RUNTIME.into(),
        }
    }

    #[test]
    fn each_host_takes_only_the_code_it_can_run() {
        let aarch64 = "aarch64-unknown-linux-musl";
        let ok = |m, p: &Platform| check(&manifest(m), p).map_err(|e| e.name());
        assert_eq!(ok(None, &board(true)), Ok(()));
        assert_eq!(ok(None, &board(false)), Err("needs_precompiled"));
        assert_eq!(
            ok(code(aarch64, Engine::Native, RUNTIME), &board(true)),
            Err("precompiled_refused")
        );
        assert_eq!(
            ok(code(aarch64, Engine::Native, RUNTIME), &board(false)),
            Ok(())
        );
        assert_eq!(
            ok(
                code("armv7-unknown-linux-gnueabihf", Engine::Pulley, RUNTIME),
                &board(false)
            ),
            Err("wrong_target")
        );
        assert_eq!(
            ok(code(aarch64, Engine::Pulley, RUNTIME), &board(false)),
            Err("wrong_engine")
        );
        assert_eq!(
            ok(
                code(aarch64, Engine::Native, "wasmtime-1.0.0"),
                &board(false)
            ),
            Err("wrong_runtime")
        );
    }

    #[test]
    fn thirty_two_bit_arm_always_gets_pulley() {
        assert_eq!(
            engine_for("armv7-unknown-linux-gnueabihf", false),
            Engine::Pulley
        );
        assert_eq!(
            engine_for("aarch64-unknown-linux-musl", false),
            Engine::Native
        );
        assert_eq!(
            engine_for("aarch64-unknown-linux-musl", true),
            Engine::Pulley
        );
    }

    #[test]
    fn pulley_matches_the_pointer_width() {
        assert_eq!(
            wasmtime_target("armv7-unknown-linux-gnueabihf", Engine::Pulley),
            "pulley32"
        );
        assert_eq!(
            wasmtime_target("aarch64-unknown-linux-musl", Engine::Pulley),
            "pulley64"
        );
        assert_eq!(
            wasmtime_target("x86_64-unknown-linux-musl", Engine::Pulley),
            "pulley64"
        );
        assert_eq!(
            wasmtime_target("aarch64-unknown-linux-musl", Engine::Native),
            "aarch64-unknown-linux-musl"
        );
    }

    #[test]
    fn this_host_says_what_it_is() {
        let me = this();
        assert!(me.target.contains("linux"), "{}", me.target);
        assert!(me.runtime.starts_with("wasmtime-48."), "{}", me.runtime);
        assert_eq!(me.compiler, cfg!(feature = "compiler"));
    }
}
