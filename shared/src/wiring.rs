//! The composition root the binaries share: the AWS clients, built once per process, wired
//! into the adapters and the pipeline. Nothing else in the library constructs adapters.

use crate::aws::{
    AwsWorkloads, Clients, CodeBuildBuilds, DynamoLedger, EcrRegistry, EventBridgePublisher,
    KmsSigner, RetentionClients,
};
use crate::config::{Config, RetentionConfig};
use crate::pipeline::{Adapters, Pipeline};
use crate::ports::{Clock, Ports, SystemClock};
use crate::retention::Retention;
use std::marker::PhantomData;

/// The AWS adapters, on the system clock or another one (hours of retries on the emulator,
/// a retention run "days later").
pub struct Aws<C = SystemClock>(PhantomData<fn() -> C>);

impl<C: Clock + Clone + 'static> Ports for Aws<C> {
    type Ledger = DynamoLedger;
    type Builds = CodeBuildBuilds;
    type Registry = EcrRegistry;
    type Events = EventBridgePublisher;
    type Clock = C;
    type Signer = KmsSigner;
    type Inventory = EcrRegistry;
    type Workloads = AwsWorkloads;
}

/// The pipeline wired to AWS.
pub type AwsPipeline<C = SystemClock> = Pipeline<Aws<C>>;

/// Retention wired to AWS.
pub type AwsRetention<C = SystemClock> = Retention<Aws<C>>;

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
    pub fn retention_at<C: Clock + Clone + 'static>(
        &self,
        config: RetentionConfig,
        clock: C,
    ) -> AwsRetention<C> {
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
    pub fn pipeline_at<C: Clock + Clone + 'static>(
        &self,
        config: &Config,
        clock: C,
    ) -> AwsPipeline<C> {
        Pipeline::new(
            config.clone(),
            Adapters {
                ledger: DynamoLedger::new(self.dynamodb.clone(), &config.ledger_table)
                    .with_default_repository(&config.repository),
                builds: CodeBuildBuilds::new(self.codebuild.clone()),
                registry: EcrRegistry::new(self.ecr.clone()),
                events: EventBridgePublisher::new(self.eventbridge.clone(), &config.event_bus),
                clock,
                signer: KmsSigner::new(self.kms.clone(), config.signing_key.clone()),
            },
        )
    }
}
