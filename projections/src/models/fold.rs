//! Folding a batch of `ProcessModel` events into row images, in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ProcessModelEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use super::store::{self, json_text, JsonText, ModelRow, VersionRow};
use super::Rows;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::event_metadata::EventMetadata;

pub(crate) const AGGREGATE_TYPE: &str = "ProcessModel";

/// Where the fold finds a version published before the batch (a restore copies its JSON):
/// the only thing it reads from the database, so each backend supplies its own.
#[async_trait]
pub(crate) trait VersionLookup: Send {
    /// The frozen editor JSON of `model_id`'s published `version`, if it was published.
    async fn version_json(
        &mut self,
        model_id: Uuid,
        version: i32,
    ) -> Result<Option<JsonText>, sqlx::Error>;
}

/// The PostgreSQL lookup: `model_versions` of one generation.
pub(super) struct PgVersions<'c> {
    pub(super) conn: &'c mut PgConnection,
    pub(super) tables: &'c store::Tables,
    pub(super) generation: i64,
}

#[async_trait]
impl VersionLookup for PgVersions<'_> {
    async fn version_json(
        &mut self,
        model_id: Uuid,
        version: i32,
    ) -> Result<Option<JsonText>, sqlx::Error> {
        store::version_json(self.conn, self.tables, self.generation, model_id, version).await
    }
}

/// The fold of a batch. A row's or version's editor JSON is `Some` where an event of the
/// batch set it, `None` where it is the model's JSON as stored before the batch (never read:
/// it is often tens of KB stored out of line, and the writes copy it inside the database).
pub(crate) struct Batch {
    rows: Rows,
    versions: Vec<VersionRow>,
}

/// A folded batch: the final image of every touched row and the versions it published.
pub(crate) struct Folded {
    pub(crate) rows: Vec<ModelRow>,
    pub(crate) versions: Vec<VersionRow>,
}

/// Who and when, from the event's metadata (the command's time; the store's time if absent).
fn provenance(event: &StoredEvent) -> (Option<String>, DateTime<Utc>) {
    let meta = EventMetadata::of(event);
    let time = meta
        .time
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(event.recorded_at, |t| t.with_timezone(&Utc));
    (meta.user_id, time)
}

impl Batch {
    pub(crate) fn new(rows: Rows) -> Self {
        Self {
            rows,
            versions: Vec::new(),
        }
    }

    /// Whether the fold holds `id`'s row.
    pub(crate) fn holds(&self, id: &Uuid) -> bool {
        self.rows.contains_key(id)
    }

    /// How many rows the fold holds.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The row of `id`, if the fold holds it.
    pub(crate) fn row_mut(&mut self, id: &Uuid) -> Option<&mut ModelRow> {
        self.rows.get_mut(id)
    }

    /// The versions published so far, handed over: the fold goes on without them (a later
    /// restore of one finds it through its [`VersionLookup`]).
    pub(crate) fn take_versions(&mut self) -> Vec<VersionRow> {
        std::mem::take(&mut self.versions)
    }

    /// Adds rows loaded from the table, for the events still to come.
    pub(crate) fn add_loaded(&mut self, rows: impl IntoIterator<Item = ModelRow>) {
        self.rows.extend(rows.into_iter().map(|row| (row.id, row)));
    }

    pub(crate) async fn apply(
        &mut self,
        versions: &mut (impl VersionLookup + ?Sized),
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let id = Uuid::parse_str(&event.aggregate_id)
            .map_err(|e| ProjectionError::failed(event.global_position, e))?;
        let payload: ProcessModelEvent = crate::upcast::decode_model_event(event)?;
        let (user, time) = provenance(event);
        if let ProcessModelEvent::ModelCreated(created) = payload {
            self.rows.insert(
                id,
                ModelRow {
                    id,
                    tenant_id: created.tenant_id.to_string(),
                    process_key: created.key.to_string(),
                    name: created.name.to_string(),
                    category: created.category.map(|c| c.to_string()),
                    description: created.description.map(|d| d.to_string()),
                    version: created.version as i32,
                    status: "DRAFT".into(),
                    model_json: Some(json_text(&created.model_json)),
                    created_by: user.clone(),
                    created_time: time,
                    updated_by: user,
                    updated_time: time,
                    revision: event.sequence,
                },
            );
            return Ok(());
        }
        let missing = || {
            ProjectionError::failed(
                event.global_position,
                format!(
                    "{} for model {id}, which the projection does not have",
                    event.event_type
                ),
            )
        };
        let row = self.rows.get_mut(&id).ok_or_else(missing)?;
        row.updated_by = user.clone();
        row.updated_time = time;
        row.revision = event.sequence;
        match payload {
            ProcessModelEvent::ModelCreated(_) => {}
            ProcessModelEvent::MetadataChanged(changed) => {
                row.name = changed.name.to_string();
                row.category = changed.category.map(|c| c.to_string());
                row.description = changed.description.map(|d| d.to_string());
            }
            ProcessModelEvent::ModelJsonReplaced(replaced) => {
                row.model_json = Some(json_text(&replaced.model_json));
            }
            ProcessModelEvent::DraftVersionOpened(opened) => {
                row.version = opened.version as i32;
                row.status = "DRAFT".into();
            }
            ProcessModelEvent::ModelPublished(published) => {
                // `None`: the JSON stored before the batch, which no event before this one
                // changed; the version's insert copies it from the row.
                let model_json = row.model_json.clone();
                row.status = "PUBLISHED".into();
                self.versions.push(VersionRow {
                    model_id: id,
                    version: published.version as i32,
                    tenant_id: row.tenant_id.clone(),
                    process_key: row.process_key.clone(),
                    name: row.name.clone(),
                    model_json,
                    comment: published.comment,
                    published_by: user,
                    published_time: time,
                });
            }
            ProcessModelEvent::ModelArchived(_) => row.status = "ARCHIVED".into(),
            ProcessModelEvent::ModelRestored(restored) => {
                row.version = restored.version as i32;
                row.status = "DRAFT".into();
                if let Some(from) = restored.source_version {
                    let from = from as i32;
                    let in_batch = self
                        .versions
                        .iter()
                        .rev()
                        .find(|v| v.model_id == id && v.version == from)
                        .map(|v| v.model_json.clone());
                    // A version published earlier in the batch may hold the JSON stored
                    // before it (`None`): the row then gets that value back.
                    row.model_json = match in_batch {
                        Some(content) => content,
                        None => Some(versions.version_json(id, from).await?.ok_or_else(|| {
                            ProjectionError::failed(
                                event.global_position,
                                format!(
                                    "model {id} restores version {from}, which was never published"
                                ),
                            )
                        })?),
                    };
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Folded {
        let mut rows: Vec<ModelRow> = self.rows.into_values().collect();
        // A stable order keeps lock acquisition consistent between concurrent writers.
        rows.sort_unstable_by_key(|r| r.id);
        Folded {
            rows,
            versions: self.versions,
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::process_model::{
        DraftVersionOpened, ModelJsonReplaced, ModelPublished, ModelRestored,
    };
    use domain::upcast::MODEL_RESTORED_V2;
    use domain::EditorJson;
    use serde_json::json;

    use super::*;

    const ID: &str = "6f1f4a52-7c8e-4c83-9d1c-2f0c7a4e9b01";

    /// Versions published before the batch: none here; a lookup would be a bug.
    struct NoVersions;

    #[async_trait]
    impl VersionLookup for NoVersions {
        async fn version_json(
            &mut self,
            model_id: Uuid,
            version: i32,
        ) -> Result<Option<JsonText>, sqlx::Error> {
            panic!("looked up version {version} of {model_id}, which the batch holds");
        }
    }

    fn stored(sequence: i64, event: ProcessModelEvent) -> StoredEvent {
        let payload = serde_json::to_value(&event).expect("event JSON");
        let event_type = payload
            .as_object()
            .and_then(|variant| variant.keys().next())
            .expect("{\"<EventType>\": {…}}")
            .clone();
        let event_version = match event {
            ProcessModelEvent::ModelRestored(_) => MODEL_RESTORED_V2,
            _ => "1.0",
        };
        StoredEvent {
            global_position: sequence,
            tx_id: 1,
            aggregate_type: AGGREGATE_TYPE.into(),
            aggregate_id: ID.into(),
            sequence,
            event_type,
            event_version: event_version.into(),
            payload: payload.into(),
            metadata: json!({"user_id": "alice"}).into(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// A draft at version 1 as loaded by a projector batch: without its editor JSON.
    fn loaded_draft() -> Rows {
        let id = Uuid::parse_str(ID).expect("uuid");
        let row = ModelRow {
            id,
            tenant_id: "acme".into(),
            process_key: "order".into(),
            name: "Order".into(),
            category: None,
            description: None,
            version: 1,
            status: "DRAFT".into(),
            model_json: None,
            created_by: Some("alice".into()),
            created_time: DateTime::<Utc>::UNIX_EPOCH,
            updated_by: Some("alice".into()),
            updated_time: DateTime::<Utc>::UNIX_EPOCH,
            revision: 1,
        };
        Rows::from([(id, row)])
    }

    /// `events` folded onto [`loaded_draft`].
    async fn fold(events: &[StoredEvent]) -> Folded {
        let mut batch = Batch::new(loaded_draft());
        for event in events {
            batch.apply(&mut NoVersions, event).await.expect("apply");
        }
        batch.finish()
    }

    #[tokio::test]
    async fn a_publish_freezes_the_stored_json_and_a_later_restore_of_it_undoes_an_edit() {
        let edited = json!({"childShapes": [], "properties": {"documentation": "edited"}});
        let events = [
            stored(
                2,
                ProcessModelEvent::ModelPublished(ModelPublished {
                    version: 1,
                    comment: None,
                }),
            ),
            stored(
                3,
                ProcessModelEvent::DraftVersionOpened(DraftVersionOpened { version: 2 }),
            ),
            stored(
                4,
                ProcessModelEvent::ModelJsonReplaced(ModelJsonReplaced {
                    model_json: EditorJson::parse(edited.clone()).expect("editor JSON"),
                }),
            ),
        ];
        let edited_only = fold(&events).await;
        assert_eq!(edited_only.versions.len(), 1);
        assert!(
            edited_only.versions[0].model_json.is_none(),
            "version 1 copies the JSON stored before the batch"
        );
        assert_eq!(
            edited_only.rows[0]
                .model_json
                .as_ref()
                .map(store::json_value),
            Some(edited)
        );

        let restore = stored(
            5,
            ProcessModelEvent::ModelRestored(ModelRestored {
                version: 2,
                source_version: Some(1),
            }),
        );
        let restored = fold(&[events.as_slice(), &[restore]].concat()).await;
        assert!(
            restored.rows[0].model_json.is_none(),
            "the restore brings back the stored JSON, which the write keeps"
        );
        assert_eq!(
            (restored.rows[0].version, restored.rows[0].status.as_str()),
            (2, "DRAFT")
        );
    }
}
