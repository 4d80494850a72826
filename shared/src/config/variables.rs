//! The names of the environment variables [`super::Config`] reads.

pub const SOURCE_BUCKET: &str = "ARCHGATE_SOURCE_BUCKET";
pub const SOURCE_PREFIX: &str = "ARCHGATE_SOURCE_PREFIX";
pub const REPOSITORY: &str = "ARCHGATE_REPOSITORY";
/// Optional: the namespace of repositories uploads may name by their key's folder
/// (`apps/`: `releases/apps/web/web-1.4.2.zip` is release `web-1.4.2` of `apps/web`).
pub const REPOSITORY_PREFIX: &str = "ARCHGATE_REPOSITORY_PREFIX";
/// Optional: the KMS key the namespace's repositories are encrypted with when archgate
/// creates them (AES256 without one).
pub const REPOSITORY_KMS_KEY: &str = "ARCHGATE_REPOSITORY_KMS_KEY";
pub const AMD64_PROJECT: &str = "ARCHGATE_AMD64_PROJECT";
pub const ARM64_PROJECT: &str = "ARCHGATE_ARM64_PROJECT";
pub const MANIFEST_MODE: &str = "ARCHGATE_MANIFEST_MODE";
pub const MANIFEST_PROJECT: &str = "ARCHGATE_MANIFEST_PROJECT";
pub const LEDGER_TABLE: &str = "ARCHGATE_LEDGER_TABLE";
pub const EVENT_BUS: &str = "ARCHGATE_EVENT_BUS";
pub const GATE_ALLOWLIST: &str = "ARCHGATE_GATE_ALLOWLIST";
pub const GATE_ON_SCAN_FAILURE: &str = "ARCHGATE_GATE_ON_SCAN_FAILURE";
pub const MOVING_TAGS: &str = "ARCHGATE_MOVING_TAGS";
/// The deployment's account and region; events from elsewhere are ignored (optional).
pub const ACCOUNT_ID: &str = "ARCHGATE_ACCOUNT_ID";
pub const REGION: &str = "ARCHGATE_REGION";
/// Retention's variables, read by [`super::RetentionConfig`].
pub const RETENTION_REPOSITORIES: &str = "ARCHGATE_RETENTION_REPOSITORIES";
pub const RETENTION_UNTAGGED_DAYS: &str = "ARCHGATE_RETENTION_UNTAGGED_DAYS";
pub const RETENTION_MAX_DELETE_SHARE: &str = "ARCHGATE_RETENTION_MAX_DELETE_SHARE";
pub const RETENTION_CONCURRENCY: &str = "ARCHGATE_RETENTION_CONCURRENCY";
/// Release-level retention (each optional; nothing set: no release expires).
pub const RETENTION_KEEP_RELEASES: &str = "ARCHGATE_RETENTION_KEEP_RELEASES";
pub const RETENTION_KEEP_DAYS: &str = "ARCHGATE_RETENTION_KEEP_DAYS";
pub const RETENTION_PROTECT: &str = "ARCHGATE_RETENTION_PROTECT";
pub const RETENTION_ATTEMPT_DAYS: &str = "ARCHGATE_RETENTION_ATTEMPT_DAYS";
/// The reconciler's timing, read by [`super::ReconcilePolicy`].
pub const RECONCILE_STALE_MINUTES: &str = "ARCHGATE_RECONCILE_STALE_MINUTES";
pub const RECONCILE_DEADLINE_HOURS: &str = "ARCHGATE_RECONCILE_DEADLINE_HOURS";
/// The KMS key (ECDSA P-256) that signs release attestations; unsigned when unset.
pub const SIGNING_KEY: &str = "ARCHGATE_SIGNING_KEY";
/// A PEM file of certificates to trust besides Amazon Trust Services' roots (optional;
/// read by [`crate::aws::http_client`]).
pub const CA_BUNDLE: &str = "ARCHGATE_CA_BUNDLE";
/// The dead-letter queue's URL, for `archgate dlq` (the stack's `DeadLetterQueueUrl` output).
pub const DEAD_LETTER_QUEUE: &str = "ARCHGATE_DEAD_LETTER_QUEUE";
/// The deployed scheduled functions, for `archgate dlq redrive` of their dead-lettered
/// events (the stack's `ReconcilerFunctionName` and `RetentionFunctionName` outputs).
pub const RECONCILER_FUNCTION: &str = "ARCHGATE_RECONCILER_FUNCTION";
pub const RETENTION_FUNCTION: &str = "ARCHGATE_RETENTION_FUNCTION";
/// The gate's per-severity limits, one variable each.
pub const GATE_MAX: [&str; 6] = [
    "ARCHGATE_GATE_MAX_CRITICAL",
    "ARCHGATE_GATE_MAX_HIGH",
    "ARCHGATE_GATE_MAX_MEDIUM",
    "ARCHGATE_GATE_MAX_LOW",
    "ARCHGATE_GATE_MAX_INFORMATIONAL",
    "ARCHGATE_GATE_MAX_UNDEFINED",
];

/// The variables [`super::Config::from_env`] requires (or, for the manifest project, may
/// require). The gate's variables ([`GATE_MAX`], [`GATE_ALLOWLIST`], [`GATE_ON_SCAN_FAILURE`],
/// [`MOVING_TAGS`]) are optional with documented defaults.
pub const VARIABLES: [&str; 9] = [
    SOURCE_BUCKET,
    SOURCE_PREFIX,
    REPOSITORY,
    AMD64_PROJECT,
    ARM64_PROJECT,
    MANIFEST_MODE,
    MANIFEST_PROJECT,
    LEDGER_TABLE,
    EVENT_BUS,
];
