//! Folding feed events into audit rows: the projector's pure core.
//!
//! One SUCCESS row per accepted command: a command appends its events in one transaction,
//! so they arrive contiguously with the same `tx_id` and aggregate; consecutive events with
//! equal `(tx_id, aggregate_type, aggregate_id)` fold into one row. One FAILURE row per
//! `CommandRejected` record. The fold starts from the chain's stored tip, and a row's
//! `details` hold all the fold's state, so a batch whose first events continue the tip's
//! command extends the tip exactly as if both batches had been one: rows come out the same
//! for every batch size.

use chrono::{DateTime, Utc};
use domain::CommandRejected;
use serde_json::{json, Value};

use super::fields::{detail_fields, detail_fields_of, DETAIL_FIELDS};
use super::hash::{self, GENESIS};
use super::row::{AuditResult, AuditRow};
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::event_metadata::EventMetadata;

/// The aggregate type and event type of a rejection record (`domain::rejection`).
const REJECTION: &str = "CommandRejection";
const REJECTED: &str = "CommandRejected";
/// The aggregate type of process models.
const MODEL: &str = "ProcessModel";

/// Why the projector refuses to go on.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The tip must be extended, but its stored hash does not match its content: someone
    /// changed the row. Re-hashing it would launder the change, so the projector stops.
    #[error("audit chain tip seq {seq} fails its hash check (tampered with?); run audit verify")]
    TamperedTip { seq: i64 },
    /// An `xid8` beyond `bigint`.
    #[error("transaction id {0} does not fit the audit log's tx_id column")]
    TxIdRange(u64),
}

/// The chain's state through one batch: the stored tip (possibly extended) and the new rows.
pub(crate) struct Chain {
    tip: Option<AuditRow>,
    tip_extended: bool,
    new: Vec<AuditRow>,
}

/// What a batch changes: the tip row to rewrite (when the batch continued its command) and
/// the rows to append, hashed and linked.
pub(crate) struct Changes {
    pub(crate) updated_tip: Option<AuditRow>,
    pub(crate) appended: Vec<AuditRow>,
}

impl Chain {
    /// Continues after `tip`, the row with the highest seq (`None` for an empty chain).
    pub(crate) fn after(tip: Option<AuditRow>) -> Self {
        Self {
            tip,
            tip_extended: false,
            new: Vec::new(),
        }
    }

    /// Folds in the next event in feed order.
    pub(crate) fn push(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        if let Some(last) = self.new.last_mut() {
            if continues(last, event) {
                extend(last, event);
                return Ok(());
            }
        } else if let Some(tip) = self.tip.as_mut() {
            if continues(tip, event) {
                if !self.tip_extended && hash::compute(tip) != tip.hash {
                    return Err(ProjectionError::failed(
                        event.global_position,
                        ChainError::TamperedTip { seq: tip.seq },
                    ));
                }
                self.tip_extended = true;
                extend(tip, event);
                return Ok(());
            }
        }
        let seq = self
            .new
            .last()
            .or(self.tip.as_ref())
            .map_or(1, |row| row.seq + 1);
        self.new.push(start(event, seq)?);
        Ok(())
    }

    /// Hashes and links what changed.
    pub(crate) fn finish(self) -> Changes {
        let mut updated_tip = None;
        let mut prev = GENESIS.to_owned();
        if let Some(mut tip) = self.tip {
            if self.tip_extended {
                tip.hash = hash::compute(&tip);
                prev.clone_from(&tip.hash);
                updated_tip = Some(tip);
            } else {
                prev = tip.hash;
            }
        }
        let mut appended = self.new;
        for row in &mut appended {
            row.prev_hash = prev;
            row.hash = hash::compute(row);
            prev = row.hash.clone();
        }
        Changes {
            updated_tip,
            appended,
        }
    }
}

/// Whether `event` is one more event of the command `row` records.
fn continues(row: &AuditRow, event: &StoredEvent) -> bool {
    row.result == AuditResult::Success
        && !is_rejection(event)
        && i64::try_from(event.tx_id).is_ok_and(|tx_id| tx_id == row.tx_id)
        && row.resource == event.aggregate_type
        && row.resource_id.as_deref() == Some(event.aggregate_id.as_str())
}

fn is_rejection(event: &StoredEvent) -> bool {
    event.aggregate_type == REJECTION && event.event_type == REJECTED
}

/// A new row (not yet linked or hashed) for the command that `event` starts.
fn start(event: &StoredEvent, seq: i64) -> Result<AuditRow, ProjectionError> {
    let tx_id = i64::try_from(event.tx_id).map_err(|_| {
        ProjectionError::failed(event.global_position, ChainError::TxIdRange(event.tx_id))
    })?;
    let meta = EventMetadata::of(event);
    let mut row = AuditRow {
        id: event.global_position,
        user_id: meta.user_id,
        action: String::new(),
        resource: String::new(),
        resource_id: None,
        ip_address: meta.client_ip,
        user_agent: meta.user_agent,
        timestamp: timestamp(event, meta.time.as_deref()),
        result: AuditResult::Success,
        details: Value::Null,
        tenant_id: meta.tenant_id,
        correlation_id: meta.correlation_id,
        global_position: event.global_position,
        tx_id,
        seq,
        prev_hash: String::new(),
        hash: String::new(),
    };
    if is_rejection(event) {
        let rejected: CommandRejected = event.decode_payload()?;
        row.result = AuditResult::Failure;
        row.action = rejected.command;
        row.resource = rejected.resource_type;
        row.resource_id = rejected.resource_id;
        row.tenant_id = rejected.tenant_id.or(row.tenant_id);
        row.details = json!({"reasonCode": rejected.reason_code, "reason": rejected.reason});
    } else {
        row.action = meta.command.unwrap_or_else(|| event.event_type.clone());
        row.resource.clone_from(&event.aggregate_type);
        row.resource_id = Some(event.aggregate_id.clone());
        row.details = json!({"events": [], "fromSequence": event.sequence});
        extend(&mut row, event);
    }
    Ok(row)
}

/// Adds one more event of the row's command to its details.
fn extend(row: &mut AuditRow, event: &StoredEvent) {
    row.global_position = event.global_position;
    let Some(details) = row.details.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(events)) = details.get_mut("events") {
        events.push(Value::String(event.event_type.clone()));
    }
    details.insert("toSequence".to_owned(), json!(event.sequence));
    // Older event versions are read in the current shape, from the tree (cloning only
    // those); current ones from the text, without building the tree.
    let mut fields = if event.aggregate_type == MODEL
        && domain::upcast::needs_upcast(&event.event_type, &event.event_version)
    {
        let upcast = domain::upcast::upcast_model_event(
            &event.event_type,
            &event.event_version,
            event.payload.value().clone(),
        );
        detail_fields_of(&upcast, &event.event_type)
    } else {
        detail_fields(event.payload.as_text(), &event.event_type)
            .unwrap_or_else(|| detail_fields_of(&event.payload, &event.event_type))
    };
    for (key, _) in DETAIL_FIELDS {
        if let Some(value) = fields.remove(key) {
            details.insert(key.to_owned(), value);
        }
    }
}

/// The command's time from its metadata (RFC 3339), else when the event was recorded; in
/// microseconds, as PostgreSQL stores it, so the hash survives the round trip.
fn timestamp(event: &StoredEvent, time: Option<&str>) -> DateTime<Utc> {
    let time = time
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or(event.recorded_at, |time| time.with_timezone(&Utc));
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use chrono::SecondsFormat;

    use super::*;

    fn event(position: i64, tx_id: u64, aggregate: &str, event_type: &str) -> StoredEvent {
        StoredEvent {
            global_position: position,
            tx_id,
            aggregate_type: "ProcessModel".into(),
            aggregate_id: aggregate.into(),
            sequence: position,
            event_type: event_type.into(),
            event_version: "1.0".into(),
            payload: json!({ event_type: {"version": position} }).into(),
            metadata: json!({"user_id": "u", "tenant_id": "t", "command": "UpdateModel",
                             "time": "2026-01-02T03:04:05.123456Z", "correlation_id": "c"})
            .into(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn rejection(position: i64, tx_id: u64) -> StoredEvent {
        StoredEvent {
            aggregate_type: "CommandRejection".into(),
            event_type: REJECTED.into(),
            payload: json!({"tenantId": "t", "command": "PublishModel",
                            "resourceType": "ProcessModel", "resourceId": "a",
                            "reasonCode": "invalid-model", "reason": "no start event"})
            .into(),
            ..event(position, tx_id, "r", REJECTED)
        }
    }

    fn fold(events: &[StoredEvent], batch: usize) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        for chunk in events.chunks(batch) {
            let mut chain = Chain::after(rows.last().cloned());
            for event in chunk {
                chain.push(event).expect("push");
            }
            let changes = chain.finish();
            if let Some(tip) = changes.updated_tip {
                let last = rows.len() - 1;
                rows[last] = tip;
            }
            rows.extend(changes.appended);
        }
        rows
    }

    fn events() -> Vec<StoredEvent> {
        vec![
            event(1, 10, "a", "ModelCreated"),
            event(2, 11, "a", "DraftVersionOpened"),
            event(3, 11, "a", "MetadataChanged"),
            event(4, 11, "a", "ModelJsonReplaced"),
            rejection(5, 12),
            event(6, 13, "b", "ModelCreated"),
            event(7, 14, "a", "ModelArchived"),
            event(8, 14, "b", "ModelArchived"),
        ]
    }

    #[test]
    fn one_row_per_command_and_per_rejection() {
        let rows = fold(&events(), 100);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.seq,
                    r.id,
                    r.global_position,
                    r.result,
                    r.resource_id.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, 1, 1, AuditResult::Success, Some("a".into())),
                (2, 2, 4, AuditResult::Success, Some("a".into())),
                (3, 5, 5, AuditResult::Failure, Some("a".into())),
                (4, 6, 6, AuditResult::Success, Some("b".into())),
                (5, 7, 7, AuditResult::Success, Some("a".into())),
                (6, 8, 8, AuditResult::Success, Some("b".into())),
            ]
        );
        assert_eq!(
            rows[1].details,
            json!({"events": ["DraftVersionOpened", "MetadataChanged", "ModelJsonReplaced"],
                   "fromSequence": 2, "toSequence": 4, "version": 4})
        );
        assert_eq!(rows[2].action, "PublishModel");
        assert_eq!(
            rows[2].details,
            json!({"reasonCode": "invalid-model", "reason": "no start event"})
        );
        assert_eq!(rows[0].prev_hash, GENESIS);
        for pair in rows.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        assert_eq!(
            rows[0]
                .timestamp
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            "2026-01-02T03:04:05.123456Z"
        );
    }

    #[test]
    fn rows_do_not_depend_on_batch_size() {
        let whole = fold(&events(), 100);
        for batch in 1..=7 {
            assert_eq!(fold(&events(), batch), whole, "batch size {batch}");
        }
    }

    #[test]
    fn refuses_to_extend_a_tampered_tip() {
        let mut rows = fold(&events()[..2], 100);
        rows[1].user_id = Some("mallory".into());
        let mut chain = Chain::after(rows.pop());
        assert!(matches!(
            chain.push(&events()[2]),
            Err(ProjectionError::Failed {
                global_position: 3,
                ..
            })
        ));
    }
}
