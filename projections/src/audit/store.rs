//! The statements that write `audit_logs`: read the chain tip, rewrite it, append rows in
//! one statement per batch. Each takes the table it writes: `audit_logs` for the active
//! generation, a rebuild's own table otherwise ([`Target::table`]).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::projector::FAMILY;
use super::row::{AuditRow, COLUMNS};
use crate::generation::{self, Target, TARGET_CTE};

/// The partitioned table of the audit log.
pub(crate) const TABLE: &str = "audit_logs";

/// The generation `target` writes and its row with the highest seq, if any, in one
/// statement.
pub(crate) async fn tip(
    conn: &mut PgConnection,
    target: Target,
    table: &str,
) -> Result<(i64, Option<AuditRow>), sqlx::Error> {
    let sql = format!(
        "WITH {TARGET_CTE}
         SELECT target.generation, tip.* FROM target
           LEFT JOIN LATERAL (SELECT {COLUMNS} FROM {table}
                               WHERE generation = target.generation
                               ORDER BY seq DESC LIMIT 1) tip ON true"
    );
    let row = sqlx::query(&sql)
        .bind(target.fixed())
        .bind(FAMILY)
        .fetch_one(conn)
        .await?;
    let generation = generation::required(row.try_get("generation")?)?;
    let tip = match row.try_get::<Option<i64>, _>("seq")? {
        Some(_) => Some(AuditRow::from_row(&row)?),
        None => None,
    };
    Ok((generation, tip))
}

/// Rewrites the tip after its command got more events (only these columns change).
pub(crate) async fn update_tip(
    conn: &mut PgConnection,
    table: &str,
    generation: i64,
    tip: &AuditRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE {table} SET details = $3, global_position = $4, hash = $5 \
         WHERE generation = $1 AND seq = $2"
    ))
    .bind(generation)
    .bind(tip.seq)
    .bind(&tip.details)
    .bind(tip.global_position)
    .bind(&tip.hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends `rows` to `generation` in one statement.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    table: &str,
    generation: i64,
    rows: Vec<AuditRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns = Columns::with_capacity(rows.len());
    for row in rows {
        columns.push(row);
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (generation, seq, id, tenant_id, user_id, action, resource, \
             resource_id, ip_address, user_agent, \"timestamp\", result, details, correlation_id, \
             global_position, tx_id, prev_hash, hash) \
         SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], \
             $12::text[], $13::jsonb[], $14::text[], $15::bigint[], $16::bigint[], $17::text[], \
             $18::text[])"
    ))
    .bind(generation)
    .bind(columns.seq)
    .bind(columns.id)
    .bind(columns.tenant_id)
    .bind(columns.user_id)
    .bind(columns.action)
    .bind(columns.resource)
    .bind(columns.resource_id)
    .bind(columns.ip_address)
    .bind(columns.user_agent)
    .bind(columns.timestamp)
    .bind(columns.result)
    .bind(columns.details)
    .bind(columns.correlation_id)
    .bind(columns.global_position)
    .bind(columns.tx_id)
    .bind(columns.prev_hash)
    .bind(columns.hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows turned into one array per column, for `UNNEST`.
struct Columns {
    seq: Vec<i64>,
    id: Vec<i64>,
    tenant_id: Vec<Option<String>>,
    user_id: Vec<Option<String>>,
    action: Vec<String>,
    resource: Vec<String>,
    resource_id: Vec<Option<String>>,
    ip_address: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    timestamp: Vec<DateTime<Utc>>,
    result: Vec<&'static str>,
    details: Vec<serde_json::Value>,
    correlation_id: Vec<Option<String>>,
    global_position: Vec<i64>,
    tx_id: Vec<i64>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            seq: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            tenant_id: Vec::with_capacity(n),
            user_id: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            resource: Vec::with_capacity(n),
            resource_id: Vec::with_capacity(n),
            ip_address: Vec::with_capacity(n),
            user_agent: Vec::with_capacity(n),
            timestamp: Vec::with_capacity(n),
            result: Vec::with_capacity(n),
            details: Vec::with_capacity(n),
            correlation_id: Vec::with_capacity(n),
            global_position: Vec::with_capacity(n),
            tx_id: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, row: AuditRow) {
        self.seq.push(row.seq);
        self.id.push(row.id);
        self.tenant_id.push(row.tenant_id);
        self.user_id.push(row.user_id);
        self.action.push(row.action);
        self.resource.push(row.resource);
        self.resource_id.push(row.resource_id);
        self.ip_address.push(row.ip_address);
        self.user_agent.push(row.user_agent);
        self.timestamp.push(row.timestamp);
        self.result.push(row.result.as_str());
        self.details.push(row.details);
        self.correlation_id.push(row.correlation_id);
        self.global_position.push(row.global_position);
        self.tx_id.push(row.tx_id);
        self.prev_hash.push(row.prev_hash);
        self.hash.push(row.hash);
    }
}
