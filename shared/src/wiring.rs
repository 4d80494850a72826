//! The composition root the binaries share: the AWS clients, built once per process, wired
//! into the adapters and the pipeline. Nothing else in the library constructs adapters.

use crate::aws::{
    AwsWorkloads, Clients, CodeBuildBuilds, DynamoLedger, EcrRegistry, EventBridgePublisher,
    KmsSigner, RetentionClients,
};
use crate::config::{Config, RetentionConfig};
use crate::pipeline::Pipeline;
use crate::ports::{Clock, SystemClock};
use crate::retention::Retention;

/// The pipeline wired to AWS.
pub type AwsPipeline = Pipeline<
    DynamoLedger,
    CodeBuildBuilds,
    EcrRegistry,
    EventBridgePublisher,
    SystemClock,
    KmsSigner,
>;

/// Retention wired to AWS.
pub type AwsRetention =
    Retention<EcrRegistry, AwsWorkloads, DynamoLedger, EventBridgePublisher, SystemClock>;

impl RetentionClients {
    /// Retention on these clients, for `config`'s repositories, ledger table and event bus.
    pub fn retention(self, config: RetentionConfig) -> AwsRetention {
        Retention {
            inventory: EcrRegistry::new(self.ecr),
            workloads: AwsWorkloads::new(self.ecs, self.lambda),
            ledger: DynamoLedger::new(self.dynamodb, &config.ledger_table),
            events: EventBridgePublisher::new(self.eventbridge, &config.event_bus),
            clock: SystemClock,
            config,
        }
    }
}

impl Clients {
    /// Retention on these clients, for `config`'s repositories, ledger table and event bus.
    pub fn retention(&self, config: RetentionConfig) -> AwsRetention {
        self.retention_at(config, SystemClock)
    }

    /// [`Clients::retention`] on another clock (a run "days later" on the emulator).
    pub fn retention_at<C: Clock>(
        &self,
        config: RetentionConfig,
        clock: C,
    ) -> Retention<EcrRegistry, AwsWorkloads, DynamoLedger, EventBridgePublisher, C> {
        Retention {
            inventory: EcrRegistry::new(self.ecr.clone()),
            workloads: AwsWorkloads::new(self.ecs(), self.lambda()),
            ledger: DynamoLedger::new(self.dynamodb.clone(), &config.ledger_table),
            events: EventBridgePublisher::new(self.eventbridge.clone(), &config.event_bus),
            clock,
            config,
        }
    }

    /// The pipeline on these clients, for `config`'s ledger table and event bus.
    pub fn pipeline(&self, config: &Config) -> AwsPipeline {
        self.pipeline_at(config, SystemClock)
    }

    /// [`Clients::pipeline`] on another clock (hours of retries on the emulator).
    pub fn pipeline_at<C: Clock>(
        &self,
        config: &Config,
        clock: C,
    ) -> Pipeline<DynamoLedger, CodeBuildBuilds, EcrRegistry, EventBridgePublisher, C, KmsSigner>
    {
        Pipeline::new(
            config.clone(),
            DynamoLedger::new(self.dynamodb.clone(), &config.ledger_table),
            CodeBuildBuilds::new(self.codebuild.clone()),
            EcrRegistry::new(self.ecr.clone()),
            EventBridgePublisher::new(self.eventbridge.clone(), &config.event_bus),
            clock,
        )
        .signing_with(KmsSigner::new(self.kms.clone(), config.signing_key.clone()))
    }
}
