//! Call budgets in CPU time. The epoch ticker ([`super::epoch`]) only wakes the check:
//! when a call has run for its budget in wall-clock time, the store asks how much CPU
//! its thread used since the call began. A call that waited for a core (a busy board, a
//! thousand devices in one process) gets the rest of its budget and goes on; only a
//! call that really spent its budget computing is stopped.

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};
use wasmtime::UpdateDeadline;

use super::epoch;

/// The CPU budget of the call in progress on one store.
#[derive(Debug, Clone, Copy)]
pub struct CpuBudget {
    budget: Duration,
    started: Duration,
}

impl CpuBudget {
    /// A budget of `budget` CPU time per call.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            started: Duration::ZERO,
        }
    }

    /// Starts a call on this thread: the epoch deadline to set, in ticks.
    pub fn start(&mut self) -> u64 {
        self.started = thread_cpu();
        epoch::ticks_for(self.budget)
    }

    /// Called when the epoch deadline is reached: stop the call if its thread used the
    /// budget, or wait as long as the rest of the budget (a thread cannot use more CPU
    /// than wall-clock time).
    pub fn on_deadline(&mut self) -> UpdateDeadline {
        let used = thread_cpu().saturating_sub(self.started);
        match self.budget.checked_sub(used) {
            Some(rest) if !rest.is_zero() => UpdateDeadline::Continue(epoch::ticks_for(rest)),
            _ => UpdateDeadline::Interrupt,
        }
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or_default(),
        u32::try_from(now.tv_nsec).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin_for(cpu: Duration) {
        let start = thread_cpu();
        while thread_cpu() - start < cpu {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn a_call_that_computed_its_budget_is_interrupted() {
        let mut budget = CpuBudget::new(Duration::from_millis(20));
        budget.start();
        spin_for(Duration::from_millis(25));
        assert!(matches!(budget.on_deadline(), UpdateDeadline::Interrupt));
    }

    #[test]
    fn a_call_that_waited_gets_the_rest_of_its_budget() {
        let mut budget = CpuBudget::new(Duration::from_millis(200));
        budget.start();
        // Wall-clock time passes, the thread computes almost nothing.
        std::thread::sleep(Duration::from_millis(250));
        match budget.on_deadline() {
            UpdateDeadline::Continue(ticks) => {
                assert!(
                    ticks > epoch::ticks_for(Duration::from_millis(150)),
                    "{ticks}"
                );
            }
            _ => panic!("a sleeping call was stopped"),
        }
    }

    #[test]
    fn the_thread_clock_counts_this_threads_work_only() {
        let before = thread_cpu();
        std::thread::spawn(|| spin_for(Duration::from_millis(30)))
            .join()
            .expect("joins");
        assert!(thread_cpu() - before < Duration::from_millis(20));
    }
}
