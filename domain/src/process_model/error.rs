//! Why a process-model command was refused.

use crate::process_model::ModelStatus;
use crate::validation::ValidationReport;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProcessModelError {
    /// No such model for this tenant (it may exist for another tenant; that is not revealed).
    #[error("process model not found")]
    NotFound,
    #[error("a process model with key '{key}' already exists")]
    KeyTaken { key: String },
    #[error("the model is at revision {actual}, not {expected}")]
    StaleRevision { expected: u64, actual: u64 },
    #[error("{action} is not allowed while the model is {status}")]
    IllegalTransition {
        action: &'static str,
        status: ModelStatus,
    },
    #[error("the model has {} validation error(s)", report.errors.len())]
    InvalidModel { report: ValidationReport },
    #[error("version {version} was never published")]
    UnknownVersion { version: u32 },
}

impl ProcessModelError {
    /// A stable code for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::KeyTaken { .. } => "key-taken",
            Self::StaleRevision { .. } => "stale-revision",
            Self::IllegalTransition { .. } => "illegal-transition",
            Self::InvalidModel { .. } => "invalid-model",
            Self::UnknownVersion { .. } => "unknown-version",
        }
    }
}
