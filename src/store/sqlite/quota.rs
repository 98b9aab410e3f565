//! The conversation quota (`store::Quota`): memberships a user started or
//! accepted are marked `own` in `members`; only those count.

use rusqlite::{params, Connection};

use crate::domain::Username;
use crate::store::StoreResult;
use crate::store::{Quota, StoreError};

/// How many conversations `user` started or accepted.
pub fn started(conn: &Connection, user: &Username) -> StoreResult<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM members WHERE username = ?1 AND own = 1")?
        .query_row(params![user.as_str()], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// `Forbidden` when the quota's user may start no more.
pub fn check(conn: &Connection, quota: &Quota) -> StoreResult<()> {
    let n = started(conn, &quota.user)?;
    if n < quota.max {
        return Ok(());
    }
    Err(StoreError::Forbidden(Quota::full_message(n, quota.max)))
}
