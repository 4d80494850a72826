//! Errors of the adapter layer (talking to AWS). Domain errors live beside their domain code;
//! the pipeline and the handlers have their own enums and keep these as sources.

use std::error::Error as StdError;

pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The service asked us to slow down and the SDK's retries ran out: retry the invocation.
    #[error("{service} {operation} throttled after the SDK's retries")]
    Throttled {
        service: &'static str,
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// Network trouble, timeouts, 5xx: worth retrying the invocation.
    #[error("{service} {operation} failed transiently")]
    Transient {
        service: &'static str,
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// The service rejected the request: retrying the same request will not help.
    #[error("{service} {operation} was rejected ({code})")]
    Rejected {
        service: &'static str,
        operation: &'static str,
        code: String,
        #[source]
        source: BoxError,
    },
    /// The tag already names other content and cannot move (immutable tags): not retryable,
    /// and not a failure of the service.
    #[error("{service} {operation}: tag {tag} already names other content")]
    TagTaken {
        service: &'static str,
        operation: &'static str,
        tag: String,
        #[source]
        source: BoxError,
    },
    /// What was asked about is not there (an image deleted since its event was sent): not
    /// retryable, and for a caller that only wanted to read it, nothing to do.
    #[error("{service} {operation}: {what} does not exist")]
    NotFound {
        service: &'static str,
        operation: &'static str,
        what: String,
    },
    /// The signing key cannot make signatures archgate's verifiers check (not there, not an
    /// enabled ECC_NIST_P256 SIGN_VERIFY key): not retryable until someone fixes the key.
    #[error("the signing key {key} cannot sign releases: {reason}")]
    KeyUnusable { key: String, reason: String },
    /// The service answered with something archgate cannot use.
    #[error("{service} {operation} answered unexpectedly: {reason}")]
    Unexpected {
        service: &'static str,
        operation: &'static str,
        reason: String,
    },
}

impl AdapterError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AdapterError::Throttled { .. } | AdapterError::Transient { .. }
        )
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            AdapterError::Throttled { .. } => "Archgate.Throttled",
            AdapterError::Transient { .. } => "Archgate.Transient",
            AdapterError::Rejected { .. } => "Archgate.Rejected",
            AdapterError::TagTaken { .. } => "Archgate.TagTaken",
            AdapterError::NotFound { .. } => "Archgate.NotFound",
            AdapterError::KeyUnusable { .. } => "Archgate.SigningKeyUnusable",
            AdapterError::Unexpected { .. } => "Archgate.UnexpectedResponse",
        }
    }
}

/// An error with its whole chain of causes, `outer: cause: root`, for logs and answers.
pub fn chain(error: &dyn StdError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
