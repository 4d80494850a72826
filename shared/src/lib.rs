//! archgate: S3 upload of a Docker build context → native amd64 + arm64 CodeBuild builds →
//! a multi-arch OCI image index in ECR.
//!
//! Layers: [`domain`] is pure (state machine, tags, OCI index); [`ports`] are the traits the
//! [`pipeline`] needs; [`aws`] implements them with the AWS SDK; [`inbound`] turns untrusted
//! EventBridge events into facts; [`config`] and [`telemetry`] are shared by every binary.

pub mod aws;
pub mod build_variables;
pub mod config;
pub mod domain;
pub mod error;
pub mod evaluate;
pub mod handler_error;
pub mod inbound;
pub mod operation;
pub mod pipeline;
pub mod ports;
pub mod reconcile;
pub mod retention;
pub mod telemetry;
pub mod wiring;
pub mod write;

pub use config::Config;
