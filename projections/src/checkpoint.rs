//! Consumer checkpoints (`projection_checkpoints`): the feed position of the last event a
//! consumer has processed. A consumer saves it in the same transaction as its effects.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, Row};

use crate::error::FeedError;
use crate::event::parse_tx_id;
use crate::position::Position;

/// A consumer's stored progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub name: String,
    pub position: Position,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "name, tx_id::text AS tx_id_text, global_position, updated_at";

impl Checkpoint {
    fn from_row(row: &PgRow) -> Result<Self, FeedError> {
        Ok(Self {
            name: row.try_get("name")?,
            position: Position::new(
                parse_tx_id(row.try_get("tx_id_text")?)?,
                row.try_get("global_position")?,
            ),
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// A step's move of a consumer's checkpoint: from `from`, the position the step read its
/// batch after, to `to`, the batch's last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move<'a> {
    pub name: &'a str,
    pub from: Position,
    pub to: Position,
}

/// A checkpoint row as a statement outside a transaction read it: its position and the
/// version of the row (its `xmin`, the transaction that last wrote it). A later statement
/// moves it only if the row is still that version, so anything that
/// wrote the row in between (an overlapping runner, a rebuild's swap even where it left
/// the position as it was) makes the move fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) position: Position,
    pub(crate) row_version: String,
}

impl Seen {
    /// The columns a `SELECT` with the checkpoint row as `cp` reads for [`Seen::from_row`].
    pub(crate) const COLUMNS: &'static str = "cp.xmin::text AS checkpoint_xmin, \
         cp.tx_id::text AS checkpoint_tx_id, cp.global_position AS checkpoint_global_position";

    /// The row read with [`Seen::COLUMNS`]; `None` where the checkpoint row was missing.
    pub(crate) fn from_row(row: &PgRow) -> Result<Option<Self>, FeedError> {
        let Some(row_version) = row.try_get::<Option<String>, _>("checkpoint_xmin")? else {
            return Ok(None);
        };
        let tx_id: String = row.try_get("checkpoint_tx_id")?;
        Ok(Some(Self {
            position: Position::new(
                parse_tx_id(&tx_id)?,
                row.try_get("checkpoint_global_position")?,
            ),
            row_version,
        }))
    }
}

/// The consumer's checkpoint as committed now, `None` if it has never saved one. A plain
/// read: for status reports and read-your-writes waits, not for deciding what to apply.
pub async fn load<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
) -> Result<Option<Checkpoint>, FeedError> {
    let sql = format!("SELECT {COLUMNS} FROM projection_checkpoints WHERE name = $1");
    let row = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(Checkpoint::from_row).transpose()
}

/// The consumer's committed position, [`Position::START`] if it has never saved one. A
/// plain read, as [`load`].
pub async fn position<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
) -> Result<Position, FeedError> {
    Ok(load(executor, name)
        .await?
        .map_or(Position::START, |checkpoint| checkpoint.position))
}

/// Every consumer's checkpoint, by name.
pub async fn list<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<Checkpoint>, FeedError> {
    let sql = format!("SELECT {COLUMNS} FROM projection_checkpoints ORDER BY name");
    let rows = sqlx::query(&sql).fetch_all(executor).await?;
    rows.iter().map(Checkpoint::from_row).collect()
}

/// Inside a transaction: the consumer's checkpoint ([`Position::START`] for a new one),
/// with its row locked until the transaction ends. A second consumer of the same name
/// blocks here until the first commits and then reads the advanced checkpoint, so even
/// two runners that overlap never apply an event twice.
pub async fn load_for_update(conn: &mut PgConnection, name: &str) -> Result<Position, FeedError> {
    let sql = format!("SELECT {COLUMNS} FROM projection_checkpoints WHERE name = $1 FOR UPDATE");
    if let Some(row) = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(Checkpoint::from_row(&row)?.position);
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(&sql).bind(name).fetch_one(&mut *conn).await?;
    Ok(Checkpoint::from_row(&row)?.position)
}

/// Inside a transaction: moves the consumer's checkpoint from `from` to `to` if it is at
/// `from` (compare-and-set), and locks its row until the transaction ends, so effects
/// written in the same transaction commit with it. `false` (nothing changed) when the row
/// is elsewhere or missing. A second consumer of the same name blocks on the row lock and
/// then finds it moved, so overlapping runners never apply an event twice.
pub async fn advance(
    conn: &mut PgConnection,
    name: &str,
    from: Position,
    to: Position,
) -> Result<bool, FeedError> {
    let updated = sqlx::query(
        "UPDATE projection_checkpoints \
            SET tx_id = $4::text::xid8, global_position = $5, updated_at = now() \
          WHERE name = $1 AND tx_id = $2::text::xid8 AND global_position = $3",
    )
    .bind(name)
    .bind(from.tx_id_text())
    .bind(from.global_position)
    .bind(to.tx_id_text())
    .bind(to.global_position)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Inside the transaction that applied the effects up to `position`: stores it.
pub async fn save(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
) -> Result<(), FeedError> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, tx_id, global_position, updated_at) \
         VALUES ($1, $2::text::xid8, $3, now()) \
         ON CONFLICT (name) DO UPDATE \
         SET tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position, \
             updated_at = EXCLUDED.updated_at",
    )
    .bind(name)
    .bind(position.tx_id_text())
    .bind(position.global_position)
    .execute(conn)
    .await?;
    Ok(())
}
