//! Retention's statements, written once for both backends: what a prune batch deletes.
//!
//! Events go in `seq` order: a batch takes the oldest `limit` events and deletes the run of them
//! received before the cutoff, stopping at the first younger one. So no index on `received_at`
//! is kept for it (one B-tree entry less per event); an old event behind a younger one (clocks
//! of several processes disagreeing by a moment) waits until that one is old too. An event's
//! receipts (of duplicates) go with it. Every other table is pruned by its own time index,
//! oldest first, `limit` rows a batch.

use super::sql::{Arg, Statement};
use super::{PruneCutoffs, Pruned};

/// The highest `seq` of the events a batch deletes: one row, one column, NULL for none.
pub(crate) fn events_through(before: i64, limit: usize) -> Statement {
    Statement {
        sql: "WITH head AS (SELECT seq, received_at FROM events ORDER BY seq LIMIT ?) \
              SELECT MAX(seq) FROM head WHERE seq < COALESCE( \
                  (SELECT MIN(seq) FROM head WHERE received_at >= ?), 9223372036854775807)"
            .into(),
        args: vec![Arg::Int(limit as i64), Arg::Int(before)],
    }
}

/// Deletes the events up to `through` and their receipts, and marks them pruned (so that a
/// reader behind them is told it lost events); the second statement's count is the events'.
pub(crate) fn events(through: i64) -> [Statement; 3] {
    [
        Statement {
            sql: "DELETE FROM deliveries WHERE direction = 'inbound' \
                  AND event_id IN (SELECT id FROM events WHERE seq <= ?)"
                .into(),
            args: vec![Arg::Int(through)],
        },
        Statement {
            sql: "DELETE FROM events WHERE seq <= ?".into(),
            args: vec![Arg::Int(through)],
        },
        Statement {
            sql: super::events::MARK_PRUNED.into(),
            args: vec![Arg::Text(through.to_string())],
        },
    ]
}

/// What a statement of `history` counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Deliveries,
    Messages,
    Changes,
    Keys,
}

impl Pruned {
    /// Adds `n` rows deleted of `part`.
    pub(crate) fn count(&mut self, part: Part, n: u64) {
        match part {
            Part::Deliveries => self.deliveries += n,
            Part::Messages => self.messages += n,
            Part::Changes => self.changes += n,
            Part::Keys => self.keys += n,
        }
    }
}

/// The deletes of everything but events that `cut` asks for, in order: each deletes at most
/// `limit` rows older than its cutoff, oldest first.
pub(crate) fn history(cut: PruneCutoffs, limit: usize) -> Vec<(Part, Statement)> {
    let parts: [(Part, Option<i64>, &str); 4] = [
        // A pending attempt is queue state, not history: it stays whatever its age.
        (
            Part::Deliveries,
            cut.deliveries_before,
            "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries \
             WHERE created_at < ? AND status <> 'pending' ORDER BY created_at LIMIT ?)",
        ),
        // A message goes once no attempt of it is left.
        (
            Part::Messages,
            cut.deliveries_before,
            "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m \
             WHERE m.created_at < ? \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id) \
             ORDER BY m.created_at LIMIT ?)",
        ),
        (
            Part::Changes,
            cut.changes_before,
            "DELETE FROM webhook_changes WHERE rev IN (SELECT rev FROM webhook_changes \
             WHERE changed_at < ? ORDER BY rev LIMIT ?)",
        ),
        (
            Part::Keys,
            cut.keys_before,
            "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys \
             WHERE created_at < ? ORDER BY created_at LIMIT ?)",
        ),
    ];
    parts
        .into_iter()
        .filter_map(|(part, before, sql)| {
            let args = vec![Arg::Int(before?), Arg::Int(limit as i64)];
            Some((
                part,
                Statement {
                    sql: sql.into(),
                    args,
                },
            ))
        })
        .collect()
}
