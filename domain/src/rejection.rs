//! The record of a refused command. Kept in the event store (aggregate type
//! `CommandRejection`, one stream per rejection) so that the audit log's FAILURE rows can be
//! rebuilt from the store like everything else. Who and where are in the event metadata.

use serde::{Deserialize, Serialize};

/// What was refused and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRejected {
    /// The caller's tenant, when the caller was identified.
    pub tenant_id: Option<String>,
    /// The command's name, e.g. `PublishModel`.
    pub command: String,
    /// The kind of resource addressed, e.g. `ProcessModel`.
    pub resource_type: String,
    /// The resource addressed, when there was one.
    pub resource_id: Option<String>,
    /// A stable code, e.g. `invalid-model`, `stale-revision`, `forbidden`.
    pub reason_code: String,
    /// A sentence for people.
    pub reason: String,
}

impl cqrs_es::DomainEvent for CommandRejected {
    fn event_type(&self) -> String {
        "CommandRejected".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// The command that records a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRejection(pub CommandRejected);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectionError {
    /// Each rejection gets a fresh stream; a second record on one stream is a bug upstream.
    #[error("this rejection was already recorded")]
    AlreadyRecorded,
}

/// A rejection's stream: exactly one `CommandRejected` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejection {
    recorded: bool,
}

impl cqrs_es::Aggregate for CommandRejection {
    const TYPE: &'static str = "CommandRejection";
    type Command = RecordRejection;
    type Event = CommandRejected;
    type Error = RejectionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.recorded {
            return Err(RejectionError::AlreadyRecorded);
        }
        sink.write(command.0, self).await;
        Ok(())
    }

    fn apply(&mut self, _event: Self::Event) {
        self.recorded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn rejected() -> CommandRejected {
        CommandRejected {
            tenant_id: Some("acme".into()),
            command: "PublishModel".into(),
            resource_type: "ProcessModel".into(),
            resource_id: Some("m1".into()),
            reason_code: "invalid-model".into(),
            reason: "the model has 1 validation error(s)".into(),
        }
    }

    #[test]
    fn records_once() {
        TestFramework::<CommandRejection>::with(())
            .given_no_previous_events()
            .when(RecordRejection(rejected()))
            .then_expect_events(vec![rejected()]);
    }

    #[test]
    fn refuses_a_second_record_on_one_stream() {
        TestFramework::<CommandRejection>::with(())
            .given(vec![rejected()])
            .when(RecordRejection(rejected()))
            .then_expect_error(RejectionError::AlreadyRecorded);
    }
}
