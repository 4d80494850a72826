//! The composition root the binaries share: the AWS clients, built once per process, wired
//! into the adapters and the pipeline. Nothing else in the library constructs adapters.

use crate::aws::{Clients, CodeBuildBuilds, DynamoLedger, EcrRegistry, EventBridgePublisher};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::ports::SystemClock;

/// The pipeline wired to AWS.
pub type AwsPipeline =
    Pipeline<DynamoLedger, CodeBuildBuilds, EcrRegistry, EventBridgePublisher, SystemClock>;

impl Clients {
    /// The pipeline on these clients, for `config`'s ledger table and event bus.
    pub fn pipeline(&self, config: &Config) -> AwsPipeline {
        Pipeline::new(
            config.clone(),
            DynamoLedger::new(self.dynamodb.clone(), &config.ledger_table),
            CodeBuildBuilds::new(self.codebuild.clone()),
            EcrRegistry::new(self.ecr.clone()),
            EventBridgePublisher::new(self.eventbridge.clone(), &config.event_bus),
            SystemClock,
        )
    }
}
