//! The account's workloads in memory: the images ECS and Lambda name, as a list the test or
//! the simulation sets. Reads go through the fault plan like any other call.

use super::chaos::Chaos;
use archgate::error::AdapterError;
use archgate::operation::ECS_DESCRIBE_TASK_DEFINITION;
use archgate::ports::{ImageUse, Workloads};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct MemoryWorkloads {
    uses: Arc<Mutex<Vec<ImageUse>>>,
    chaos: Chaos,
}

impl MemoryWorkloads {
    pub fn new(chaos: Chaos) -> Self {
        MemoryWorkloads {
            uses: Arc::default(),
            chaos,
        }
    }

    /// A workload starts naming `image`.
    pub fn start_using(&self, use_: ImageUse) {
        self.lock().push(use_);
    }

    /// The workload `user` no longer names any image.
    pub fn stop(&self, user: &str) {
        self.lock().retain(|u| u.user != user);
    }

    pub fn uses(&self) -> Vec<ImageUse> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ImageUse>> {
        self.uses.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Workloads for MemoryWorkloads {
    async fn images_in_use(&self) -> Result<Vec<ImageUse>, AdapterError> {
        let fault = self.chaos.enter(ECS_DESCRIBE_TASK_DEFINITION).await?;
        let uses = self.uses();
        self.chaos
            .leave(fault, ECS_DESCRIBE_TASK_DEFINITION, uses)
            .await
    }
}
