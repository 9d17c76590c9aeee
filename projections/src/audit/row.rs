//! One row of `audit_logs`, as stored, hashed and served.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Decode, Row, Type};

use super::hash;

/// Whether the audited command was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditResult {
    /// The command was accepted and its events appended.
    Success,
    /// The command was refused (a `CommandRejected` record).
    Failure,
}

impl AuditResult {
    /// The stored spelling: `SUCCESS` or `FAILURE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SUCCESS" => Some(Self::Success),
            "FAILURE" => Some(Self::Failure),
            _ => None,
        }
    }
}

impl fmt::Display for AuditResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit log entry: who did what to which resource, when, from where, with what result,
/// and its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    /// The global position of the entry's first event; the same in every generation.
    pub id: i64,
    pub user_id: Option<String>,
    /// The command, e.g. `CreateModel`, `PublishModel`.
    pub action: String,
    /// The kind of resource, e.g. `ProcessModel`.
    pub resource: String,
    pub resource_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// When the command ran (its metadata `time`, else when its first event was recorded).
    pub timestamp: DateTime<Utc>,
    pub result: AuditResult,
    /// SUCCESS: `events`, `fromSequence`, `toSequence` and, when the events carry them,
    /// `version`, `key`, `comment`, `sourceVersion`. FAILURE: `reasonCode`, `reason`.
    pub details: serde_json::Value,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The global position of the entry's last event.
    pub global_position: i64,
    /// The appending transaction's id (`events.tx_id`).
    pub tx_id: i64,
    /// Place in the chain: 1, 2, 3… in feed order.
    pub seq: i64,
    /// The previous entry's `hash` ([`hash::GENESIS`] for seq 1).
    pub prev_hash: String,
    /// Hex SHA-256 of the entry's content, `seq` and `prev_hash` (see [`hash::compute`]).
    pub hash: String,
}

impl AuditRow {
    /// The hash this row's content calls for; equal to `hash` unless the row was tampered
    /// with.
    pub fn expected_hash(&self) -> String {
        hash::compute(self)
    }

    /// Decodes a row selected with [`COLUMNS`].
    /// The same on PostgreSQL and SQLite: only the column types' decoders differ.
    pub(crate) fn from_row<'r, R>(row: &'r R) -> Result<Self, sqlx::Error>
    where
        R: Row,
        &'r str: sqlx::ColumnIndex<R>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
        String: Decode<'r, R::Database> + Type<R::Database>,
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
        Option<String>: Decode<'r, R::Database> + Type<R::Database>,
        DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
        serde_json::Value: Decode<'r, R::Database> + Type<R::Database>,
    {
        let result: &'r str = row.try_get("result")?;
        let result = AuditResult::parse(result).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "result".to_owned(),
            source: format!("unknown audit result {result:?}").into(),
        })?;
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            resource_id: row.try_get("resource_id")?,
            ip_address: row.try_get("ip_address")?,
            user_agent: row.try_get("user_agent")?,
            timestamp: row.try_get("timestamp")?,
            result,
            details: row.try_get("details")?,
            tenant_id: row.try_get("tenant_id")?,
            correlation_id: row.try_get("correlation_id")?,
            global_position: row.try_get("global_position")?,
            tx_id: row.try_get("tx_id")?,
            seq: row.try_get("seq")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }
}

/// The select list [`AuditRow::from_row`] expects.
pub(crate) const COLUMNS: &str = "id, user_id, action, resource, resource_id, ip_address, \
     user_agent, \"timestamp\", result, details, tenant_id, correlation_id, global_position, \
     tx_id, seq, prev_hash, hash";
