//! The statements of processes as peers, written once for both backends (`store::sql`):
//! heartbeats, the reaper of dead instances' leases, job locks, and handing leases back at a
//! clean stop. Each backend runs a group of them in one transaction (SQLite: its write
//! connection; PostgreSQL: a transaction of its own).

use super::sql::{Arg, Statement};
use super::InstanceId;
use crate::model::Millis;

fn statement(sql: &str, args: Vec<Arg>) -> Statement {
    Statement {
        sql: sql.into(),
        args,
    }
}

/// "This instance is alive at `now`."
pub(crate) fn heartbeat(id: &InstanceId, now: Millis) -> Statement {
    statement(
        "INSERT INTO instances (id, heartbeat_at) VALUES (?, ?) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        vec![Arg::Text(id.0.clone()), Arg::Int(now)],
    )
}

/// How many instances heartbeat at or after `since` (a count column, first).
pub(crate) fn live_count(since: Millis) -> Statement {
    statement(
        "SELECT count(*) FROM instances WHERE heartbeat_at >= ?",
        vec![Arg::Int(since)],
    )
}

/// A clean stop, in one transaction: the owner's leases handed back (the first statement's
/// count is how many), then the owner and its job locks gone.
pub(crate) fn retire(owner: &InstanceId) -> [Statement; 3] {
    let id = || vec![Arg::Text(owner.0.clone())];
    [
        statement(
            "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL \
             WHERE status = 'pending' AND lease_owner = ?",
            id(),
        ),
        statement("DELETE FROM instances WHERE id = ?", id()),
        statement("DELETE FROM job_locks WHERE owner = ?", id()),
    ]
}

/// The reaper, in one transaction: instances silent since before `stale_before` are gone,
/// then every lease not held by a live instance is freed (the second statement's count).
pub(crate) fn reap(stale_before: Millis) -> [Statement; 2] {
    [
        statement(
            "DELETE FROM instances WHERE heartbeat_at < ?",
            vec![Arg::Int(stale_before)],
        ),
        statement(
            "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL \
             WHERE status = 'pending' AND lease_until IS NOT NULL \
             AND (lease_owner IS NULL OR lease_owner NOT IN (SELECT id FROM instances))",
            vec![],
        ),
    ]
}

/// Takes or extends the job lock `name` until `until`: one row changed when `owner` holds it
/// now (it had it, or the last holder's time ran out before `now`).
pub(crate) fn try_job_lock(
    name: &str,
    owner: &InstanceId,
    now: Millis,
    until: Millis,
) -> Statement {
    statement(
        "INSERT INTO job_locks (name, owner, until) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
         WHERE job_locks.owner = excluded.owner OR job_locks.until < ?",
        vec![
            Arg::Text(name.into()),
            Arg::Text(owner.0.clone()),
            Arg::Int(until),
            Arg::Int(now),
        ],
    )
}
