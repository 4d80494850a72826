//! What the in-memory services do besides answering: every call is a point where a
//! deterministic scheduler may switch to another invocation, and where a seeded fault plan
//! may throttle, fail, lose the answer, or kill the calling process (before or after the
//! call took effect).

use archgate::error::AdapterError;
use archgate::operation::Operation;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The faults one call can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service asked to slow down (after the SDK's retries): nothing happened.
    Throttle,
    /// A 5xx: nothing happened.
    ServerError,
    /// The call took effect, then the answer was lost (a timeout, a dropped connection).
    LostAnswer,
    /// The process died before the call left it.
    CrashBefore,
    /// The process died after the call took effect, before it saw the answer.
    CrashAfter,
    /// The caller may not do this (a permission missing, a key that cannot be used): nothing
    /// happened, and trying again changes nothing until someone fixes it.
    Denied,
}

/// How often each fault strikes, out of 10,000 calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    pub throttle: u32,
    pub server_error: u32,
    pub lost_answer: u32,
    pub crash_before: u32,
    pub crash_after: u32,
}

#[derive(Debug, Default)]
struct State {
    rng: u64,
    rates: FaultRates,
    /// Set when a call killed its process; the scheduler drops that invocation and clears it.
    crashed: bool,
    calls: u64,
    injected: u64,
    /// Operations that fail on every call until the outage ends (`Service.Operation` → fault).
    outages: std::collections::BTreeMap<Operation, Fault>,
}

/// The shared fault plan and scheduling points of a set of in-memory services. The default
/// injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Chaos(Arc<Mutex<State>>);

impl Chaos {
    /// A plan drawing its faults from `seed` at `rates`.
    pub fn seeded(seed: u64, rates: FaultRates) -> Self {
        let chaos = Chaos::default();
        {
            let mut state = chaos.lock();
            state.rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            state.rates = rates;
        }
        chaos
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_rates(&self, rates: FaultRates) {
        self.lock().rates = rates;
    }

    /// Whether a call killed its process since the last [`Chaos::take_crash`].
    pub fn take_crash(&self) -> bool {
        std::mem::take(&mut self.lock().crashed)
    }

    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// From now on every call of `operation` (`Service.Operation`) meets `fault`, until
    /// [`Chaos::end_outage`]: a lasting fault, not a random one.
    pub fn start_outage(&self, operation: Operation, fault: Fault) {
        self.lock().outages.insert(operation, fault);
    }

    pub fn end_outage(&self, operation: Operation) {
        self.lock().outages.remove(&operation);
    }

    pub fn end_outages(&self) {
        self.lock().outages.clear();
    }

    fn draw(&self, operation: Operation) -> Option<Fault> {
        let mut state = self.lock();
        state.calls += 1;
        if let Some(fault) = state.outages.get(&operation).copied() {
            state.injected += 1;
            return Some(fault);
        }
        let rates = state.rates;
        if rates == FaultRates::default() {
            return None;
        }
        // xorshift64*: small, fast and the same everywhere.
        let mut x = state.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.rng = x;
        let roll = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % 10_000;
        let mut edge = 0u64;
        for (rate, fault) in [
            (rates.throttle, Fault::Throttle),
            (rates.server_error, Fault::ServerError),
            (rates.lost_answer, Fault::LostAnswer),
            (rates.crash_before, Fault::CrashBefore),
            (rates.crash_after, Fault::CrashAfter),
        ] {
            edge += u64::from(rate);
            if roll < edge {
                state.injected += 1;
                return Some(fault);
            }
        }
        None
    }

    /// The start of a call: a scheduling point, then the fault the plan has for it. A fault
    /// that stops the call before it takes effect is returned as the call's error.
    pub async fn enter(&self, call: Operation) -> Result<Option<Fault>, AdapterError> {
        yield_now().await;
        let (service, operation) = (call.service, call.name);
        match self.draw(call) {
            Some(Fault::Throttle) => Err(AdapterError::Throttled {
                service,
                operation,
                source: "injected: throttled".into(),
            }),
            Some(Fault::ServerError) => Err(AdapterError::Transient {
                service,
                operation,
                source: "injected: 500".into(),
            }),
            Some(Fault::Denied) => Err(AdapterError::Rejected {
                service,
                operation,
                code: "AccessDeniedException".to_owned(),
                source: "injected: access denied".into(),
            }),
            Some(Fault::CrashBefore) => {
                self.lock().crashed = true;
                std::future::pending().await
            }
            other => Ok(other),
        }
    }

    /// The end of a call that took effect: the answer arrives, is lost, or its process dies.
    pub async fn leave<T>(
        &self,
        fault: Option<Fault>,
        call: Operation,
        answer: T,
    ) -> Result<T, AdapterError> {
        let (service, operation) = (call.service, call.name);
        match fault {
            Some(Fault::LostAnswer) => Err(AdapterError::Transient {
                service,
                operation,
                source: "injected: the answer was lost".into(),
            }),
            Some(Fault::CrashAfter) => {
                self.lock().crashed = true;
                std::future::pending().await
            }
            _ => Ok(answer),
        }
    }
}

/// Gives the scheduler a chance to run another invocation: pending once, then ready.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
