//! The handler layer's error: what a function returns to Lambda when an invocation must fail
//! (and so be retried by EventBridge / Lambda's async retries).

use crate::error::AdapterError;
use crate::inbound::{InvalidField, MalformedEvent};
use crate::pipeline::PipelineError;
use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Malformed(#[from] MalformedEvent),
    #[error("event field {0}")]
    InvalidField(#[from] InvalidField),
    #[error("could not read build {build_id} from CodeBuild")]
    BuildLookup {
        build_id: String,
        #[source]
        source: AdapterError,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl HandlerError {
    /// Whether retrying the same event can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed(_) | HandlerError::InvalidField(_) => false,
            HandlerError::BuildLookup { source, .. } => source.is_retryable(),
            HandlerError::Pipeline(e) => e.is_retryable(),
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Malformed(_) | HandlerError::InvalidField(_) => "Archgate.MalformedEvent",
            HandlerError::BuildLookup { source, .. } => source.error_type(),
            HandlerError::Pipeline(e) => e.error_type(),
        }
    }

    /// The message with its whole chain of causes.
    pub fn chain(&self) -> String {
        crate::error::chain(self)
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        tracing::error!(error_type = error.error_type(), retryable = error.is_retryable(), error = %error.chain(), "invocation failed");
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.chain(),
        }
    }
}
