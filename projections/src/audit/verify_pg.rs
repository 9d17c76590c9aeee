//! `audit verify` on PostgreSQL: the shared walk ([`super::verify`]'s checks) over one
//! generation of `audit_logs`, read in one read-only `REPEATABLE READ` transaction.

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool, Row};

use super::projector::{FAMILY, NAME};
use super::row::{AuditRow, COLUMNS};
use super::verify::{walk, ChainLookup, VerifyReport};
use crate::generation;

/// Walks `generation` (the active one when `None`) and reports the first problem.
pub async fn verify(pool: &PgPool, generation: Option<i64>) -> Result<VerifyReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let active = generation::active(&mut *tx, FAMILY).await?;
    let generation = generation.unwrap_or(active);
    let mut lookup = PgChain {
        conn: &mut tx,
        generation,
    };
    let report = walk(&mut lookup, generation, generation == active).await?;
    tx.rollback().await?;
    Ok(report)
}

/// The PostgreSQL reads of the walk, inside its `REPEATABLE READ` transaction.
struct PgChain<'c> {
    conn: &'c mut PgConnection,
    generation: i64,
}

#[async_trait]
impl ChainLookup for PgChain<'_> {
    async fn page(&mut self, after: i64, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_logs WHERE generation = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(self.generation)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }

    async fn prev_hash_after(&mut self, seq: i64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT prev_hash FROM audit_logs WHERE generation = $1 AND seq > $2 \
             ORDER BY seq LIMIT 1",
        )
        .bind(self.generation)
        .bind(seq)
        .fetch_optional(&mut *self.conn)
        .await
    }

    async fn seq_of_hash(&mut self, hash: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT seq FROM audit_logs WHERE generation = $1 AND hash = $2 ORDER BY seq LIMIT 1",
        )
        .bind(self.generation)
        .bind(hash)
        .fetch_optional(&mut *self.conn)
        .await
    }

    async fn id_at(&mut self, seq: i64) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM audit_logs WHERE generation = $1 AND seq = $2")
            .bind(self.generation)
            .bind(seq)
            .fetch_optional(&mut *self.conn)
            .await
    }

    async fn checkpoint(&mut self) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let checkpoint = sqlx::query(
            "SELECT tx_id::text::bigint AS tx_id, global_position FROM projection_checkpoints \
             WHERE name = $1",
        )
        .bind(NAME)
        .fetch_optional(&mut *self.conn)
        .await?;
        checkpoint
            .map(|row| Ok((row.try_get("tx_id")?, row.try_get("global_position")?)))
            .transpose()
    }

    async fn first_beyond(
        &mut self,
        tx_id: i64,
        global_position: i64,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT seq, id FROM audit_logs WHERE generation = $1 \
               AND (tx_id, global_position) > ($2, $3) ORDER BY seq LIMIT 1",
        )
        .bind(self.generation)
        .bind(tx_id)
        .bind(global_position)
        .fetch_optional(&mut *self.conn)
        .await?;
        row.map(|row| Ok((row.try_get("seq")?, row.try_get("id")?)))
            .transpose()
    }
}
