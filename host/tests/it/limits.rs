//! Misbehaving components are stopped by the deadline, the memory cap or their own trap,
//! with a clear error, and the same runtime then runs the good component.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).expect("positive"),
        u32::try_from(t.tv_nsec).expect("in range"),
    )
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("pins the thread");
}

#[test]
fn a_call_that_waits_for_a_busy_core_is_not_stopped() {
    let rt = runtime();
    let budget = rt.config().call_deadline;
    let component = rt.load(MISBEHAVING).expect("loads");
    let mut device = started(&rt, &component);

    // How far the component counts per millisecond of CPU, measured alone.
    let probe = 2_000_000u64;
    let before = thread_cpu();
    assert_eq!(
        device
            .user_cfg(&format!("work:{probe}"), "", TOKEN)
            .expect("a short call"),
        Ok(())
    );
    let per_ms = probe as f64 / (thread_cpu() - before).as_secs_f64() / 1000.0;
    // Half the budget of CPU work.
    let steps = (per_ms * budget.as_millis() as f64 / 2.0) as u64;

    // Three threads spin on the same core as the call, so it gets a quarter of it.
    let cpu = rustix::thread::sched_getcpu();
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to(cpu);
                while !stop.load(Ordering::Relaxed) {
                    std::hint::black_box(0u64);
                }
            })
        })
        .collect();
    pin_to(cpu);
    let started_at = Instant::now();
    let cpu_before = thread_cpu();
    let result = device.user_cfg(&format!("work:{steps}"), "", TOKEN);
    let (wall, used) = (started_at.elapsed(), thread_cpu() - cpu_before);
    stop.store(true, Ordering::Relaxed);
    for hog in hogs {
        hog.join().expect("the hog ends");
    }

    assert_eq!(
        result.expect("not stopped: it used only about half its CPU budget"),
        Ok(())
    );
    assert!(used < budget, "used {used:?} of CPU");
    // The call really waited: by wall-clock time it ran past its budget.
    assert!(wall > budget, "took {wall:?} of wall-clock time");
}
