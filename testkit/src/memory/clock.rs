//! A clock that only moves when told: the simulation advances it by minutes or by months.

use archgate::ports::Clock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(millis: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(millis)))
    }

    pub fn advance(&self, millis: i64) {
        self.0.fetch_add(millis.max(0), Ordering::SeqCst);
    }

    pub fn set(&self, millis: i64) {
        self.0.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Time passes for everyone while this invocation waits; the others run meanwhile.
    fn pause(&self, millis: i64) -> impl std::future::Future<Output = ()> + Send {
        self.advance(millis);
        super::chaos::yield_now()
    }
}
