//! Counts the AWS operations each client performs, so "calls per event" is measured, not
//! estimated.

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A shared log of `Service.Operation` names, one entry per HTTP attempt.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

/// Calls counted per operation.
pub type CallTally = BTreeMap<String, usize>;

/// Counts calls per operation.
pub fn tally(calls: impl IntoIterator<Item = String>) -> CallTally {
    let mut tally = CallTally::new();
    for call in calls {
        *tally.entry(call).or_default() += 1;
    }
    tally
}

impl CallLog {
    pub fn total(&self) -> usize {
        self.lock().len()
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock())
    }

    /// The calls logged so far, counted per operation; the log starts again empty.
    pub fn take_tally(&self) -> CallTally {
        tally(self.take())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A poisoned log only means a panicking thread held it; the counts are still usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "archgate-call-log"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".to_owned());
        self.lock().push(name);
        Ok(())
    }
}
