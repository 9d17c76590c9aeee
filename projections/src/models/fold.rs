//! Folding a batch of `ProcessModel` events into row images, in memory.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ProcessModelEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use super::store::{self, ModelRow, VersionRow};
use super::Rows;
use crate::error::ProjectionError;
use crate::event::StoredEvent;

pub(crate) const AGGREGATE_TYPE: &str = "ProcessModel";

/// Whether folding an event of this type reads the model's current editor JSON (a publish
/// freezes it into the version row): the rows of the models a batch publishes are loaded
/// with their editor JSON, the others without it ([`ModelRow::model_json`]).
pub(crate) fn reads_model_json(event_type: &str) -> bool {
    event_type == "ModelPublished"
}

/// Where the fold finds a version published before the batch (a restore copies its JSON):
/// the only thing it reads from the database, so each backend supplies its own.
#[async_trait]
pub(crate) trait VersionLookup: Send {
    /// The frozen editor JSON of `model_id`'s published `version`, if it was published.
    async fn version_json(
        &mut self,
        model_id: Uuid,
        version: i32,
    ) -> Result<Option<serde_json::Value>, sqlx::Error>;
}

/// The PostgreSQL lookup: `model_versions` of one generation.
pub(super) struct PgVersions<'c> {
    pub(super) conn: &'c mut PgConnection,
    pub(super) generation: i64,
}

#[async_trait]
impl VersionLookup for PgVersions<'_> {
    async fn version_json(
        &mut self,
        model_id: Uuid,
        version: i32,
    ) -> Result<Option<serde_json::Value>, sqlx::Error> {
        store::version_json(self.conn, self.generation, model_id, version).await
    }
}

pub(crate) struct Batch {
    rows: Rows,
    versions: Vec<VersionRow>,
    /// Models whose editor JSON an event of the batch set (not merely loaded).
    json_set: HashSet<Uuid>,
}

/// A folded batch: the final image of every touched row, the versions it published, and
/// the models whose editor JSON it set (the others' needs no writing, even if it was loaded
/// for a publish).
pub(crate) struct Folded {
    pub(crate) rows: Vec<ModelRow>,
    pub(crate) versions: Vec<VersionRow>,
    pub(crate) json_set: HashSet<Uuid>,
}

/// Who and when, from the event's metadata (the command's time; the store's time if absent).
fn provenance(event: &StoredEvent) -> (Option<String>, DateTime<Utc>) {
    let user = event
        .metadata
        .get("user_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let time = event
        .metadata
        .get("time")
        .and_then(|v| v.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(event.recorded_at, |t| t.with_timezone(&Utc));
    (user, time)
}

impl Batch {
    pub(crate) fn new(rows: Rows) -> Self {
        Self {
            rows,
            versions: Vec::new(),
            json_set: HashSet::new(),
        }
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
            self.json_set.insert(id);
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
                    model_json: Some(created.model_json.into_value()),
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
                row.model_json = Some(replaced.model_json.into_value());
                self.json_set.insert(id);
            }
            ProcessModelEvent::DraftVersionOpened(opened) => {
                row.version = opened.version as i32;
                row.status = "DRAFT".into();
            }
            ProcessModelEvent::ModelPublished(published) => {
                let model_json = row.model_json.clone().ok_or_else(|| {
                    ProjectionError::failed(
                        event.global_position,
                        format!("model {id} was loaded without the editor JSON it publishes"),
                    )
                })?;
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
                    let content = match in_batch {
                        Some(content) => Some(content),
                        None => versions.version_json(id, from).await?,
                    };
                    self.json_set.insert(id);
                    row.model_json = Some(content.ok_or_else(|| {
                        ProjectionError::failed(
                            event.global_position,
                            format!(
                                "model {id} restores version {from}, which was never published"
                            ),
                        )
                    })?);
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
            json_set: self.json_set,
        }
    }
}
