//! The `meta` table's statements, written once for both backends: the store's id and the
//! write check (`Maintenance::check_writable`).

/// The id every process on this store shares (made once, by the first migration).
pub(crate) const STORE_ID: &str = "SELECT value FROM meta WHERE key = 'store_id'";

/// A real change (an update to the same value may write nothing at all). Argument: now, as
/// text.
pub(crate) const WRITE_CHECK: &str = "INSERT INTO meta (key, value) VALUES ('write_check', ?) \
    ON CONFLICT (key) DO UPDATE SET value = excluded.value";
