//! The command request bodies, short of HTTP and the database. Each input is parsed as JSON
//! (the API's bodies are JSON objects) and tried as the body of every command: create,
//! change metadata, replace model JSON, publish and restore. The fields the handlers in
//! `api/src/http/models.rs` read go through the same domain parsers (`ModelKey::parse`,
//! `ModelName::parse`, `Category::parse`, `Description::parse`, `EditorJson::parse`), then
//! the aggregate decides on a fresh model (create) or an existing published one (the rest).
//!
//! Nothing may panic, and every event the aggregate emits must be storable: PostgreSQL's
//! `jsonb` refuses U+0000 in any string or key, which would turn a request the API accepted
//! into a 500 from the event store. Events must also survive the store's serde round trip.
//!
//! The API's own DTOs and `parse_json` (serde with `deny_unknown_fields`, error mapping) are
//! not linked in: the `api` crate would bring axum and sqlx into this build. A field of the
//! wrong JSON type is a 400 there and is simply skipped here.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use domain::process_model::{ChangeMetadata, CreateModel, PublishModel, RestoreModel};
use domain::{
    Category, Description, EditorJson, ModelAction, ModelId, ModelKey, ModelName, ProcessModel,
    ProcessModelCommand, ProcessModelError, ProcessModelEvent, TenantId, ValueError,
};
use flowable_ui_fuzz::storable::holds_nul;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// Same limit as the publish handler.
const MAX_COMMENT_CHARS: usize = 4000;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // `PUT .../model` takes any JSON value as the editor JSON.
    if let Some(action) = replace_model_json(&body) {
        on_existing_models(action);
    }
    let Value::Object(body) = body else {
        return;
    };
    for action in [
        create(&body),
        change_metadata(&body),
        publish(&body),
        restore(&body),
    ]
    .into_iter()
    .flatten()
    {
        match action {
            ModelAction::Create(_) => decide(ProcessModel::default(), action),
            _ => on_existing_models(action),
        }
    }
});

/// Every command but create, on a draft (published once, then edited) and on a published
/// model, since the aggregate decides differently for each.
fn on_existing_models(action: ModelAction) {
    static MODELS: OnceLock<[ProcessModel; 2]> = OnceLock::new();
    let [draft, published] = MODELS.get_or_init(existing_models);
    decide(draft.clone(), action.clone());
    decide(published.clone(), action);
}

fn tenant() -> TenantId {
    TenantId::new("fuzz-tenant")
}

/// A field as the DTO reads it: absent, `null`, or a string; `Err` for any other JSON type
/// (a 400 from the API).
fn text(body: &Map<String, Value>, field: &str) -> Result<Option<Option<String>>, ()> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(()),
    }
}

/// A parse outcome: the value, or the refusal (which must name the field).
fn parsed<T>(field: &str, result: Result<T, ValueError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            assert_eq!(error.field(), field, "{error}");
            None
        }
    }
}

/// `POST /api/v1/process-models` (`CreateModelRequest`: key and name required).
fn create(body: &Map<String, Value>) -> Option<ModelAction> {
    let key = text(body, "key").ok()???;
    let name = text(body, "name").ok()???;
    let category = text(body, "category").ok()?.flatten();
    let description = text(body, "description").ok()?.flatten();
    let key = parsed("key", ModelKey::parse(&key))?;
    assert_eq!(
        ModelId::for_key(&tenant(), &key),
        ModelId::for_key(&tenant(), &key),
        "ids are stable"
    );
    let model_json = match body.get("modelJson") {
        None | Some(Value::Null) => None,
        Some(json) => Some(parsed("modelJson", EditorJson::parse(json.clone()))?),
    };
    Some(ModelAction::Create(CreateModel {
        key,
        name: parsed("name", ModelName::parse(&name))?,
        category: match category {
            Some(c) => parsed("category", Category::parse(&c))?,
            None => None,
        },
        description: match description {
            Some(d) => parsed("description", Description::parse(&d))?,
            None => None,
        },
        model_json,
    }))
}

/// `PATCH /api/v1/process-models/{id}`: absent = unchanged, `null` = cleared.
fn change_metadata(body: &Map<String, Value>) -> Option<ModelAction> {
    let name = match text(body, "name").ok()? {
        None => None,
        Some(None) => return None, // "name cannot be removed"
        Some(Some(name)) => Some(parsed("name", ModelName::parse(&name))?),
    };
    let category = match text(body, "category").ok()? {
        None => None,
        Some(None) => Some(None),
        Some(Some(c)) => Some(parsed("category", Category::parse(&c))?),
    };
    let description = match text(body, "description").ok()? {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => Some(parsed("description", Description::parse(&d))?),
    };
    let change = ChangeMetadata {
        name,
        category,
        description,
    };
    // "nothing to change" is a 400.
    (change != ChangeMetadata::default()).then_some(ModelAction::ChangeMetadata(change))
}

/// `PUT /api/v1/process-models/{id}/model`: the whole body is the editor JSON.
fn replace_model_json(body: &Value) -> Option<ModelAction> {
    let json = parsed("modelJson", EditorJson::parse(body.clone()))?;
    Some(ModelAction::ReplaceModelJson(json))
}

/// `POST .../{id}/publish`: the handler trims the comment and bounds it; the domain takes it
/// as it is.
fn publish(body: &Map<String, Value>) -> Option<ModelAction> {
    let comment = text(body, "comment")
        .ok()?
        .flatten()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return None;
    }
    // The publish handler refuses a comment holding U+0000 (PostgreSQL cannot store it).
    if comment.as_ref().is_some_and(|c| c.contains('\0')) {
        return None;
    }
    Some(ModelAction::Publish(PublishModel { comment }))
}

/// `POST .../{id}/restore`: an optional `u32` version.
fn restore(body: &Map<String, Value>) -> Option<ModelAction> {
    let from_version = match body.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(u32::try_from(v.as_u64()?).ok()?),
    };
    Some(ModelAction::Restore(RestoreModel { from_version }))
}

/// A model with a valid canvas, published once: then a draft of its version 2, and as it was
/// when published.
fn existing_models() -> [ProcessModel; 2] {
    let mut model = ProcessModel::default();
    let canvas = json!({
        "resourceId": "canvas",
        "stencil": { "id": "BPMNDiagram" },
        "childShapes": [
            { "resourceId": "start", "stencil": { "id": "StartNoneEvent" },
              "outgoing": [{ "resourceId": "flow" }] },
            { "resourceId": "flow", "stencil": { "id": "SequenceFlow" },
              "target": { "resourceId": "end" } },
            { "resourceId": "end", "stencil": { "id": "EndNoneEvent" } }
        ]
    });
    let setup = [
        ModelAction::Create(CreateModel {
            key: ModelKey::parse("fuzz").expect("valid key"),
            name: ModelName::parse("Fuzz").expect("valid name"),
            category: None,
            description: None,
            model_json: Some(EditorJson::parse(canvas).expect("valid canvas")),
        }),
        ModelAction::Publish(PublishModel { comment: None }),
    ];
    for action in setup {
        handle(&mut model, action).expect("the setup commands are accepted");
    }
    let published = model.clone();
    let edit = ModelAction::ChangeMetadata(ChangeMetadata {
        name: Some(ModelName::parse("Fuzz 2").expect("valid name")),
        ..ChangeMetadata::default()
    });
    handle(&mut model, edit).expect("a published model can be edited");
    [model, published]
}

/// Runs the command through the aggregate and checks what it emits.
fn decide(mut model: ProcessModel, action: ModelAction) {
    let Ok(events) = handle(&mut model, action) else {
        return;
    };
    for event in &events {
        let stored = serde_json::to_value(event).expect("an event serialises");
        assert!(!holds_nul(&stored), "U+0000 in a stored event: {stored}");
        let back: ProcessModelEvent =
            serde_json::from_value(stored).expect("a stored event deserialises");
        assert_eq!(
            &back, event,
            "an event changed in the store's serde round trip"
        );
    }
}

fn handle(
    model: &mut ProcessModel,
    action: ModelAction,
) -> Result<Vec<ProcessModelEvent>, ProcessModelError> {
    let command = ProcessModelCommand {
        tenant_id: tenant(),
        expected_revision: None,
        action,
    };
    let sink = EventSink::default();
    block_on(model.handle(command, &(), &sink))?;
    Ok(block_on(sink.collect()))
}

/// The aggregate is pure: its futures never wait, so one poll finishes them.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a pure aggregate future was pending"),
    }
}
