//! Consumer checkpoints in the SQLite `projection_checkpoints` table: the feed position of
//! the last event a consumer applied, saved in the transaction that applied it.

use sqlx::SqliteConnection;

use crate::position::Position;

/// The consumer's checkpoint, [`Position::START`] if it has never saved one.
pub(crate) async fn load(conn: &mut SqliteConnection, name: &str) -> Result<Position, sqlx::Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT tx_id, global_position FROM projection_checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(conn)
            .await?;
    Ok(row.map_or(Position::START, |(tx_id, global_position)| {
        Position::new(u64::try_from(tx_id).unwrap_or(0), global_position)
    }))
}

/// Stores `position` as the consumer's checkpoint (inside the transaction of its effects).
pub(crate) async fn save(
    conn: &mut SqliteConnection,
    name: &str,
    position: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, tx_id, global_position, updated_at) \
         VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
         ON CONFLICT (name) DO UPDATE SET tx_id = excluded.tx_id, \
             global_position = excluded.global_position, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(i64::try_from(position.tx_id).unwrap_or(i64::MAX))
    .bind(position.global_position)
    .execute(conn)
    .await?;
    Ok(())
}
