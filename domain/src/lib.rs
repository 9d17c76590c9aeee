//! The domain of flowable-ui: process models as an event-sourced aggregate, the record of
//! rejected commands, and the rules that decide whether a Flowable editor JSON model is valid.
//!
//! Pure: no IO, no clock, no randomness. The command service supplies time, ids and the
//! caller through commands and event metadata.

pub mod process_model;
pub mod rejection;
pub mod upcast;
pub mod validation;
pub mod values;

pub use process_model::{
    ModelAction, ModelStatus, ProcessModel, ProcessModelCommand, ProcessModelError,
    ProcessModelEvent,
};
pub use rejection::{CommandRejected, CommandRejection, RecordRejection, RejectionError};
pub use validation::{
    validate_editor_json, validate_editor_json_text, Finding, RuleCode, ValidationReport,
};
pub use values::{
    Category, Description, EditorJson, ModelId, ModelKey, ModelName, TenantId, ValueError,
};
