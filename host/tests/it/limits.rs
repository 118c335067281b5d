//! Misbehaving components are stopped by the deadline, the memory cap or their own trap,
//! with a clear error, and the same runtime then runs the good component.

use tether_host::RuntimeError;
use tether_host::component::DEFAULT_COMPONENT;
use tether_proto::ErrorCode;

use crate::support::{MISBEHAVING, TOKEN, runtime, started, state};

/// After a failure the same runtime still instantiates and runs the built-in component.
fn good_component_still_runs(rt: &tether_host::Runtime) {
    let mut good = started(rt, &rt.load(DEFAULT_COMPONENT).expect("loads"));
    assert_eq!(
        good.user_cfg("home", "correct horse", TOKEN)
            .expect("no trap"),
        Ok(())
    );
}

#[test]
fn a_component_that_loops_forever_is_stopped_by_the_deadline() {
    let rt = runtime();
    let bad = rt
        .load(MISBEHAVING)
        .expect("a valid component of the world");
    let mut device = started(&rt, &bad);
    let err = device.user_cfg("loop", "", TOKEN).expect_err("stopped");
    assert_eq!(
        err,
        RuntimeError::DeadlineExceeded(rt.config().call_deadline)
    );
    assert!(err.to_string().contains("deadline"), "{err}");
    good_component_still_runs(&rt);
}

#[test]
fn a_component_that_loops_in_init_is_stopped_too() {
    let rt = runtime();
    let bad = rt.load(MISBEHAVING).expect("loads");
    let mut device = rt.instantiate(&bad, state(&rt)).expect("instantiates");
    let err = device.init(Some(b"loop")).expect_err("stopped");
    assert!(matches!(err, RuntimeError::DeadlineExceeded(_)), "{err}");
    good_component_still_runs(&rt);
}

#[test]
fn a_component_that_grows_memory_without_bound_is_stopped_by_the_cap() {
    let rt = runtime();
    let bad = rt.load(MISBEHAVING).expect("loads");
    let mut device = started(&rt, &bad);
    let err = device.user_cfg("grow", "", TOKEN).expect_err("stopped");
    assert_eq!(
        err,
        RuntimeError::MemoryExhausted {
            cap: rt.config().memory_cap
        }
    );
    assert!(err.to_string().contains("memory cap"), "{err}");
    good_component_still_runs(&rt);
}

#[test]
fn a_trapping_component_reports_the_trap() {
    let rt = runtime();
    let mut device = started(&rt, &rt.load(MISBEHAVING).expect("loads"));
    let err = device.user_cfg("trap", "", TOKEN).expect_err("traps");
    assert!(matches!(err, RuntimeError::Trap(_)), "{err}");
    good_component_still_runs(&rt);
}

#[test]
fn a_failed_instance_refuses_further_calls() {
    let rt = runtime();
    let mut device = started(&rt, &rt.load(MISBEHAVING).expect("loads"));
    device.user_cfg("loop", "", TOKEN).expect_err("stopped");
    let err = device.status().expect_err("poisoned");
    assert!(matches!(err, RuntimeError::Poisoned(_)), "{err}");
    assert!(
        err.to_string().contains("deadline"),
        "names the first failure: {err}"
    );
}

#[test]
fn a_well_behaved_call_to_the_misbehaving_component_still_works() {
    // Control for the tests above: the component only misbehaves when asked.
    let rt = runtime();
    let mut device = started(&rt, &rt.load(MISBEHAVING).expect("loads"));
    assert_eq!(device.user_cfg("home", "", TOKEN).expect("no trap"), Ok(()));
}

#[test]
fn failed_instances_give_their_slots_back() {
    // Twice as many failures as slots: each failed instance must free its slot.
    let rt = runtime();
    let bad = rt.load(MISBEHAVING).expect("loads");
    for _ in 0..(rt.config().instance_slots * 2) {
        let mut device = started(&rt, &bad);
        device.user_cfg("trap", "", TOKEN).expect_err("traps");
    }
    good_component_still_runs(&rt);
}

#[test]
fn more_live_instances_than_slots_is_a_clear_error() {
    let rt = runtime();
    let good = rt.load(DEFAULT_COMPONENT).expect("loads");
    let live: Vec<_> = (0..rt.config().instance_slots)
        .map(|_| started(&rt, &good))
        .collect();
    let err = rt.instantiate(&good, state(&rt)).expect_err("no slot left");
    assert!(matches!(err, RuntimeError::NoSlot(_)), "{err}");
    drop(live);
    assert!(rt.instantiate(&good, state(&rt)).is_ok());
}

#[test]
fn bytes_that_are_not_a_pairing_component_are_refused_as_invalid() {
    let rt = runtime();
    let err = rt.load(b"\0asm garbage").expect_err("not a component");
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
    // A core module is not a component either.
    let err = rt.load(b"\0asm\x01\0\0\0").expect_err("a core module");
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
    // An unrelated `ErrorCode` is a typed answer, not an `Invalid` load.
    let _ = ErrorCode::Internal;
}
