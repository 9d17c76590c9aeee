//! Given/when/then tests for every rule and transition of the process-model lifecycle.

use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;
use crate::values::{EditorJson, ModelKey, ModelName, TenantId};

type Given = TestFramework<ProcessModel>;

fn tenant() -> TenantId {
    TenantId::new("acme")
}

fn key() -> ModelKey {
    ModelKey::parse("order").expect("valid key")
}

fn name(raw: &str) -> ModelName {
    ModelName::parse(raw).expect("valid name")
}

/// start → task → end: passes validation.
fn valid_json() -> EditorJson {
    EditorJson::parse(json!({
        "resourceId": "canvas",
        "stencil": {"id": "BPMNDiagram"},
        "properties": {"process_id": "order"},
        "childShapes": [
            {"resourceId": "start", "stencil": {"id": "StartNoneEvent"}, "properties": {},
             "childShapes": [], "outgoing": [{"resourceId": "f1"}]},
            {"resourceId": "f1", "stencil": {"id": "SequenceFlow"}, "properties": {},
             "childShapes": [], "outgoing": [{"resourceId": "end"}], "target": {"resourceId": "end"}},
            {"resourceId": "end", "stencil": {"id": "EndNoneEvent"}, "properties": {},
             "childShapes": [], "outgoing": []}
        ]
    }))
    .expect("object")
}

fn invalid_json() -> EditorJson {
    EditorJson::parse(json!({"stencil": {"id": "NotACanvas"}})).expect("object")
}

fn command(action: ModelAction) -> ProcessModelCommand {
    ProcessModelCommand {
        tenant_id: tenant(),
        expected_revision: None,
        action,
    }
}

fn created() -> ProcessModelEvent {
    ProcessModelEvent::ModelCreated(ModelCreated {
        tenant_id: tenant(),
        key: key(),
        name: name("Order"),
        category: None,
        description: None,
        model_json: valid_json(),
        version: 1,
    })
}

fn published(version: u32) -> ProcessModelEvent {
    ProcessModelEvent::ModelPublished(ModelPublished {
        version,
        comment: None,
    })
}

fn replaced(json: EditorJson) -> ProcessModelEvent {
    ProcessModelEvent::ModelJsonReplaced(ModelJsonReplaced { model_json: json })
}

fn create_command(model_json: Option<EditorJson>) -> ProcessModelCommand {
    command(ModelAction::Create(CreateModel {
        key: key(),
        name: name("Order"),
        category: None,
        description: None,
        model_json,
    }))
}

fn rename(to: &str) -> ModelAction {
    ModelAction::ChangeMetadata(ChangeMetadata {
        name: Some(name(to)),
        ..Default::default()
    })
}

fn renamed(to: &str) -> ProcessModelEvent {
    ProcessModelEvent::MetadataChanged(MetadataChanged {
        name: name(to),
        category: None,
        description: None,
    })
}

#[test]
fn create_starts_a_draft_at_version_1() {
    Given::with(())
        .given_no_previous_events()
        .when(create_command(Some(valid_json())))
        .then_expect_events(vec![created()]);
}

#[test]
fn create_without_json_starts_from_an_empty_canvas() {
    let events = Given::with(())
        .given_no_previous_events()
        .when(create_command(None))
        .inspect_result()
        .expect("created");
    let [ProcessModelEvent::ModelCreated(created)] = events.as_slice() else {
        panic!("expected one ModelCreated, got {events:?}");
    };
    assert_eq!(
        created.model_json,
        EditorJson::empty_canvas(&key(), &name("Order"))
    );
}

#[test]
fn create_on_an_existing_stream_is_key_taken() {
    Given::with(())
        .given(vec![created()])
        .when(create_command(None))
        .then_expect_error(ProcessModelError::KeyTaken {
            key: "order".into(),
        });
}

#[test]
fn every_command_on_a_missing_model_is_not_found() {
    for action in [
        rename("X"),
        ModelAction::ReplaceModelJson(valid_json()),
        ModelAction::Publish(PublishModel::default()),
        ModelAction::Archive,
        ModelAction::Restore(RestoreModel::default()),
    ] {
        Given::with(())
            .given_no_previous_events()
            .when(command(action))
            .then_expect_error(ProcessModelError::NotFound);
    }
}

#[test]
fn another_tenants_model_is_not_found() {
    Given::with(())
        .given(vec![created()])
        .when(ProcessModelCommand {
            tenant_id: TenantId::new("other"),
            expected_revision: None,
            action: ModelAction::Archive,
        })
        .then_expect_error(ProcessModelError::NotFound);
}

#[test]
fn a_stale_expected_revision_is_refused() {
    Given::with(())
        .given(vec![created(), renamed("B")])
        .when(ProcessModelCommand {
            tenant_id: tenant(),
            expected_revision: Some(1),
            action: rename("C"),
        })
        .then_expect_error(ProcessModelError::StaleRevision {
            expected: 1,
            actual: 2,
        });
}

#[test]
fn the_current_expected_revision_is_accepted() {
    Given::with(())
        .given(vec![created(), renamed("B")])
        .when(ProcessModelCommand {
            tenant_id: tenant(),
            expected_revision: Some(2),
            action: rename("C"),
        })
        .then_expect_events(vec![renamed("C")]);
}

#[test]
fn draft_edits_keep_the_version() {
    Given::with(())
        .given(vec![created()])
        .when(command(rename("Renamed")))
        .then_expect_events(vec![renamed("Renamed")]);
    Given::with(())
        .given(vec![created()])
        .when(command(ModelAction::ReplaceModelJson(invalid_json())))
        .then_expect_events(vec![replaced(invalid_json())]);
}

#[test]
fn metadata_change_can_clear_optional_fields() {
    let category = crate::values::Category::parse("sales").expect("valid");
    Given::with(())
        .given(vec![
            created(),
            ProcessModelEvent::MetadataChanged(MetadataChanged {
                name: name("Order"),
                category: category.clone(),
                description: None,
            }),
        ])
        .when(command(ModelAction::ChangeMetadata(ChangeMetadata {
            category: Some(None),
            ..Default::default()
        })))
        .then_expect_events(vec![renamed("Order")]);
}

#[test]
fn an_edit_that_changes_nothing_records_nothing() {
    Given::with(())
        .given(vec![created()])
        .when(command(rename("Order")))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![created(), published(1)])
        .when(command(ModelAction::ReplaceModelJson(valid_json())))
        .then_expect_events(vec![]);
}

#[test]
fn publish_freezes_the_draft_version() {
    Given::with(())
        .given(vec![created()])
        .when(command(ModelAction::Publish(PublishModel {
            comment: Some("first".into()),
        })))
        .then_expect_events(vec![ProcessModelEvent::ModelPublished(ModelPublished {
            version: 1,
            comment: Some("first".into()),
        })]);
}

#[test]
fn publish_refuses_an_invalid_model_with_its_findings() {
    let result = Given::with(())
        .given(vec![created(), replaced(invalid_json())])
        .when(command(ModelAction::Publish(PublishModel::default())))
        .inspect_result();
    match result {
        Err(ProcessModelError::InvalidModel { report }) => assert!(!report.errors.is_empty()),
        other => panic!("expected InvalidModel, got {other:?}"),
    }
}

#[test]
fn publish_is_only_for_drafts() {
    Given::with(())
        .given(vec![created(), published(1)])
        .when(command(ModelAction::Publish(PublishModel::default())))
        .then_expect_error(ProcessModelError::IllegalTransition {
            action: "PublishModel",
            status: ModelStatus::Published,
        });
    Given::with(())
        .given(vec![created(), archived(1)])
        .when(command(ModelAction::Publish(PublishModel::default())))
        .then_expect_error(ProcessModelError::IllegalTransition {
            action: "PublishModel",
            status: ModelStatus::Archived,
        });
}

#[test]
fn editing_a_published_model_opens_the_next_version_as_draft() {
    Given::with(())
        .given(vec![created(), published(1)])
        .when(command(rename("V2")))
        .then_expect_events(vec![
            ProcessModelEvent::DraftVersionOpened(DraftVersionOpened { version: 2 }),
            renamed("V2"),
        ]);
    Given::with(())
        .given(vec![created(), published(1)])
        .when(command(ModelAction::ReplaceModelJson(invalid_json())))
        .then_expect_events(vec![
            ProcessModelEvent::DraftVersionOpened(DraftVersionOpened { version: 2 }),
            replaced(invalid_json()),
        ]);
}

fn archived(version: u32) -> ProcessModelEvent {
    ProcessModelEvent::ModelArchived(ModelArchived { version })
}

#[test]
fn archive_from_draft_or_published() {
    Given::with(())
        .given(vec![created()])
        .when(command(ModelAction::Archive))
        .then_expect_events(vec![archived(1)]);
    Given::with(())
        .given(vec![created(), published(1)])
        .when(command(ModelAction::Archive))
        .then_expect_events(vec![archived(1)]);
}

#[test]
fn an_archived_model_refuses_archive_and_edits() {
    let given = || Given::with(()).given(vec![created(), archived(1)]);
    given()
        .when(command(ModelAction::Archive))
        .then_expect_error(ProcessModelError::IllegalTransition {
            action: "ArchiveModel",
            status: ModelStatus::Archived,
        });
    given()
        .when(command(rename("X")))
        .then_expect_error(ProcessModelError::IllegalTransition {
            action: "ChangeMetadata",
            status: ModelStatus::Archived,
        });
    given()
        .when(command(ModelAction::ReplaceModelJson(valid_json())))
        .then_expect_error(ProcessModelError::IllegalTransition {
            action: "ReplaceModelJson",
            status: ModelStatus::Archived,
        });
}

fn restored(version: u32, from_version: Option<u32>) -> ProcessModelEvent {
    ProcessModelEvent::ModelRestored(ModelRestored {
        version,
        source_version: from_version,
    })
}

fn restore(from_version: Option<u32>) -> ProcessModelCommand {
    command(ModelAction::Restore(RestoreModel { from_version }))
}

#[test]
fn restore_an_archived_model_as_the_next_draft_version() {
    Given::with(())
        .given(vec![created(), published(1), archived(1)])
        .when(restore(None))
        .then_expect_events(vec![restored(2, None)]);
    Given::with(())
        .given(vec![created(), published(1), archived(1)])
        .when(restore(Some(1)))
        .then_expect_events(vec![restored(2, Some(1))]);
}

#[test]
fn restore_a_published_version_into_a_draft_keeps_the_draft_version() {
    Given::with(())
        .given(vec![
            created(),
            published(1),
            ProcessModelEvent::DraftVersionOpened(DraftVersionOpened { version: 2 }),
            replaced(invalid_json()),
        ])
        .when(restore(Some(1)))
        .then_expect_events(vec![restored(2, Some(1))]);
}

#[test]
fn restore_of_a_draft_needs_a_version() {
    Given::with(())
        .given(vec![created()])
        .when(restore(None))
        .then_expect_error(ProcessModelError::IllegalTransition {
            action: "RestoreModel",
            status: ModelStatus::Draft,
        });
}

#[test]
fn restore_of_an_unpublished_version_is_refused() {
    Given::with(())
        .given(vec![created(), published(1), archived(1)])
        .when(restore(Some(7)))
        .then_expect_error(ProcessModelError::UnknownVersion { version: 7 });
}

#[test]
fn apply_tracks_state_revision_and_published_content() {
    let mut model = ProcessModel::default();
    for event in [
        created(),
        published(1),
        ProcessModelEvent::DraftVersionOpened(DraftVersionOpened { version: 2 }),
        replaced(invalid_json()),
        archived(2),
        restored(3, Some(1)),
    ] {
        cqrs_es::Aggregate::apply(&mut model, event);
    }
    assert_eq!(model.revision(), 6);
    let state = model.state().expect("created");
    assert_eq!(state.version, 3);
    assert_eq!(state.status, ModelStatus::Draft);
    assert_eq!(
        state.model_json,
        valid_json(),
        "content of version 1 restored"
    );
    assert_eq!(state.published.keys().copied().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn the_aggregate_round_trips_through_serde() {
    let mut model = ProcessModel::default();
    cqrs_es::Aggregate::apply(&mut model, created());
    cqrs_es::Aggregate::apply(&mut model, published(1));
    let json = serde_json::to_value(&model).expect("serialise");
    let back: ProcessModel = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, model);
}
