//! The wake-up behind call budgets: a thread that advances the engine's epoch every
//! [`TICK`]. A store's deadline is a number of ticks; when it is reached the store checks
//! the call's CPU time ([`super::cpu`]), so a spinning call is stopped between one and
//! two ticks after its budget. The thread ends when the engine is dropped.

use std::thread;
use std::time::Duration;

use wasmtime::Engine;

/// Epoch period.
pub const TICK: Duration = Duration::from_millis(5);

/// Starts the ticker for `engine`.
pub fn start(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    thread::Builder::new()
        .name("tether-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(TICK);
            }
        })
        .map(|_| ())
}

/// The deadline in ticks for a budget: rounded up, plus one for the partial tick in
/// progress when the call starts.
pub fn ticks_for(budget: Duration) -> u64 {
    let tick = TICK.as_nanos();
    let ticks = budget.as_nanos().div_ceil(tick) + 1;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_round_up_to_whole_ticks_plus_one() {
        assert_eq!(ticks_for(Duration::ZERO), 1);
        assert_eq!(ticks_for(TICK), 2);
        assert_eq!(ticks_for(TICK + Duration::from_nanos(1)), 3);
        assert_eq!(ticks_for(Duration::from_millis(100)), 21);
    }
}
