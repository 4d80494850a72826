//! The one error type of the `archgate` commands, and the exit status of each kind of failure.

use crate::commands::reconcile::ReconcileError;
use crate::local::LocalError;
use crate::provision::ProvisionError;
use archgate::config::policy::PolicyError;
use archgate::config::ConfigError;
use archgate::domain::tag::TagError;
use archgate::error::AdapterError;
use archgate::evaluate::EvaluateError;
use archgate::pipeline::EffectError;
use std::process::ExitCode;

/// The command ran and its answer is no, or part of its work failed, as its output says.
pub const EXIT_UNSUCCESSFUL: u8 = 1;
/// Bad arguments or configuration; clap's own usage errors exit with 2 as well.
pub const EXIT_USAGE: u8 = 2;
/// An AWS service or the emulator failed, or the ledger kept changing under an update.
pub const EXIT_AWS: u8 = 3;
/// The release is not in the ledger, or retention expired it.
pub const EXIT_NOT_FOUND: u8 = 4;

/// The exit statuses, as `archgate --help` lists them.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the command ran and its answer is no, or part of its work failed, as its output says:
     the gate does not pass, `retention apply` refused its plan, a replayed event,
     a release to reconcile or an image to delete failed, the demo found a problem
  2  bad arguments or configuration (a missing or invalid ARCHGATE_* variable, an invalid tag,
     a repository's stored policy that cannot be applied)
  3  an AWS service or the emulator failed
  4  the release is not in the ledger, or expired (retention removed its images)";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration in the environment is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A release tag on the command line is not one.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// Another argument is out of its range.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no release {0} in the ledger")]
    NotFound(String),
    /// Retention expired the release: its images are gone, nothing is left to judge.
    #[error("{0}")]
    Expired(String),
    #[error(transparent)]
    Aws(#[from] AdapterError),
    /// A repository's stored policy cannot be applied (it does not parse, or is invalid).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Judging a release's images: its repository's policy or the findings.
    #[error(transparent)]
    Judge(#[from] EffectError),
    /// The emulator, or an AWS call the local installation makes.
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Evaluate(#[from] EvaluateError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// The command ran and printed its answer, which is no: the gate does not pass,
    /// `retention apply` refused its plan.
    #[error("{0}")]
    Refused(String),
    /// Part of what the command set out to do failed; the report it printed says which.
    #[error("{0}")]
    Incomplete(String),
}

impl CliError {
    pub fn exit_status(&self) -> u8 {
        match self {
            CliError::Config(_)
            | CliError::Tag(_)
            | CliError::InvalidArgument(_)
            | CliError::Policy(_)
            | CliError::Judge(EffectError::Policy(_)) => EXIT_USAGE,
            CliError::NotFound(_)
            | CliError::Expired(_)
            | CliError::Evaluate(EvaluateError::NotFound(_)) => EXIT_NOT_FOUND,
            CliError::Reconcile(ReconcileError::Config(_)) => EXIT_USAGE,
            CliError::Provision(e) if e.unfit => EXIT_USAGE,
            CliError::Aws(_)
            | CliError::Local(_)
            | CliError::Provision(_)
            | CliError::Evaluate(_)
            | CliError::Judge(_)
            | CliError::Reconcile(_) => EXIT_AWS,
            CliError::Refused(_) | CliError::Incomplete(_) => EXIT_UNSUCCESSFUL,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    /// Whether the command's output already says what went wrong, so that repeating it on
    /// standard error would add nothing.
    pub fn is_reported(&self) -> bool {
        matches!(self, CliError::Refused(_) | CliError::Incomplete(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_the_documented_status() {
        let missing = ConfigError::Missing {
            variable: archgate::config::LEDGER_TABLE,
        };
        assert_eq!(CliError::from(missing).exit_status(), 2);
        let tag = archgate::domain::ReleaseTag::parse("").unwrap_err();
        assert_eq!(CliError::from(tag).exit_status(), 2);
        assert_eq!(CliError::NotFound("myapp:x".into()).exit_status(), 4);
        assert_eq!(CliError::Expired("myapp:x expired".into()).exit_status(), 4);
        assert_eq!(
            CliError::Evaluate(EvaluateError::NotFound("myapp:x".into())).exit_status(),
            4
        );
        let unexpected = AdapterError::Unexpected {
            service: "ECR",
            operation: "BatchGetImage",
            reason: "no manifest".into(),
        };
        assert_eq!(CliError::from(unexpected).exit_status(), 3);
        assert_eq!(CliError::Refused("no".into()).exit_status(), 1);
        assert_eq!(CliError::Incomplete("partly".into()).exit_status(), 1);
        for status in 0..=4 {
            assert!(EXIT_STATUS_HELP.contains(&format!("\n  {status}  ")));
        }
    }
}
