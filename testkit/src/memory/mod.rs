//! In-memory implementations of every port, with the semantics of the real services that
//! archgate's promises depend on, and a seeded fault plan ([`Chaos`]) shared by all of them.
//! The real handlers, pipeline, reconciler, retention and CLI commands run on them unchanged:
//! the deterministic simulation (`sim/`) and fast tests use them.

pub mod builds;
pub mod chaos;
pub mod clock;
pub mod events;
pub mod ledger;
pub mod registry;
pub mod signer;
pub mod workloads;

pub use builds::MemoryBuilds;
pub use chaos::{Chaos, Fault, FaultRates};
pub use clock::ManualClock;
pub use events::MemoryEvents;
pub use ledger::MemoryLedger;
pub use registry::MemoryRegistry;
pub use signer::MemorySigner;
pub use workloads::MemoryWorkloads;

use archgate::config::Config;
use archgate::pipeline::{Adapters, Pipeline};
use archgate::ports::Ports;

/// The in-memory services, sharing one clock and one fault plan.
pub struct Memory;

impl Ports for Memory {
    type Ledger = MemoryLedger;
    type Builds = MemoryBuilds<ManualClock>;
    type Registry = MemoryRegistry<ManualClock>;
    type Events = MemoryEvents;
    type Clock = ManualClock;
    type Signer = MemorySigner;
    type Inventory = MemoryRegistry<ManualClock>;
    type Workloads = MemoryWorkloads;
}

/// The pipeline on in-memory services.
pub type MemoryPipeline = Pipeline<Memory>;

/// The key the in-memory signer names in its signatures.
pub const MEMORY_SIGNING_KEY: &str = "alias/archgate-releases";

/// A whole set of in-memory services, cheap to clone (every clone shares the same state).
#[derive(Clone)]
pub struct MemoryServices {
    pub chaos: Chaos,
    pub clock: ManualClock,
    pub ledger: MemoryLedger,
    pub builds: MemoryBuilds<ManualClock>,
    pub registry: MemoryRegistry<ManualClock>,
    pub events: MemoryEvents,
    pub signer: MemorySigner,
}

impl MemoryServices {
    pub fn new(chaos: Chaos, clock: ManualClock) -> Self {
        MemoryServices {
            ledger: MemoryLedger::new(chaos.clone()),
            builds: MemoryBuilds::new(chaos.clone(), clock.clone()),
            registry: MemoryRegistry::new(chaos.clone(), clock.clone()),
            events: MemoryEvents::new(chaos.clone()),
            signer: MemorySigner::new(chaos.clone(), MEMORY_SIGNING_KEY),
            chaos,
            clock,
        }
    }

    pub fn pipeline(&self, config: &Config) -> MemoryPipeline {
        Pipeline::new(
            config.clone(),
            Adapters {
                ledger: self.ledger.clone(),
                builds: self.builds.clone(),
                registry: self.registry.clone(),
                events: self.events.clone(),
                clock: self.clock.clone(),
                signer: self.signer.clone(),
            },
        )
    }
}
