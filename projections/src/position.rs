//! A place in the event feed: `(tx_id, global_position)`, the order in which the feed
//! delivers events.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A place in the feed. The feed delivers events ordered by the appending transaction's id
/// (`tx_id`, PostgreSQL `xid8`) and then by `global_position`; `Position` orders the same
/// way (the derived `Ord` compares `tx_id` first).
///
/// A checkpoint is the `Position` of the last event a consumer has processed. Because
/// identity order is not commit order, a higher `global_position` does not mean "later in
/// the feed": compare whole positions, never global positions alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// The id of the transaction that appended the event (64-bit, epoch-extended `xid8`).
    pub tx_id: u64,
    /// The event's `global_position` (identity column of `events`).
    pub global_position: i64,
}

impl Position {
    /// Before every event: PostgreSQL's first normal transaction id is 3 and identities
    /// start at 1.
    pub const START: Position = Position {
        tx_id: 0,
        global_position: 0,
    };

    /// A position from its two parts.
    pub const fn new(tx_id: u64, global_position: i64) -> Self {
        Self {
            tx_id,
            global_position,
        }
    }

    /// `tx_id` as PostgreSQL text, for binding as `$n::text::xid8` (sqlx has no `xid8` type).
    pub(crate) fn tx_id_text(&self) -> String {
        self.tx_id.to_string()
    }
}

impl Default for Position {
    fn default() -> Self {
        Self::START
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tx_id, self.global_position)
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn orders_by_transaction_first() {
        let older_tx_higher_pos = Position::new(10, 900);
        let newer_tx_lower_pos = Position::new(11, 5);
        assert!(older_tx_higher_pos < newer_tx_lower_pos);
        assert!(Position::new(10, 1) < Position::new(10, 2));
    }

    #[test]
    fn start_precedes_every_real_event() {
        assert!(Position::START < Position::new(3, 1));
        assert_eq!(Position::default(), Position::START);
    }

    #[test]
    fn displays_as_tx_slash_position() {
        assert_eq!(Position::new(42, 7).to_string(), "42/7");
    }
}
