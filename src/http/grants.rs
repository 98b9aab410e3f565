//! Whether a name listed in `auth.admins` was granted admin rights on the
//! host (`parley admin`), as `AuthUser` asks for every request of a listed
//! name. The answer is read from the store and kept for `FRESH`, so a
//! revocation takes effect within that; when the store cannot be read (Redis
//! down, which is when an operator needs the admin views most) the last
//! answer stands (a login leaves one), and only a name never read yet gets
//! `unavailable`. At most
//! one entry per listed name: bounded by `auth.admins`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::domain::Username;
use crate::store::{Store, StoreResult};

/// How long a read grant is taken as it is.
pub const FRESH: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct AdminGrants {
    known: Mutex<HashMap<Username, (bool, Instant)>>,
}

impl AdminGrants {
    /// What a login just read (call only for listed names, as below).
    pub fn note(&self, user: &Username, granted: bool) {
        self.known
            .lock()
            .insert(user.clone(), (granted, Instant::now()));
    }

    /// Call only for names in `auth.admins` (that is what bounds the table).
    pub async fn granted(&self, store: &Store, user: &Username) -> StoreResult<bool> {
        let known = self.known.lock().get(user).copied();
        if let Some((granted, at)) = known {
            if at.elapsed() < FRESH {
                return Ok(granted);
            }
        }
        match store.user(user.clone()).await {
            Ok(record) => {
                let granted = record.is_some_and(|r| r.admin);
                self.note(user, granted);
                Ok(granted)
            }
            Err(e) => match known {
                Some((granted, _)) => {
                    tracing::warn!(user = %user, error = %e, "admin rights not re-read: the last answer stands");
                    Ok(granted)
                }
                None => Err(e),
            },
        }
    }
}
