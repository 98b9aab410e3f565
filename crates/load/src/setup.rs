//! Accounts, conversations and connections a run creates for itself.

use futures_util::{stream, StreamExt, TryStreamExt};

use super::error::LoadError;
use super::target::{Target, Ws};
use super::CommonArgs;

/// A conversation the run made: its id and its members' names and tokens.
pub struct Room {
    pub id: String,
    pub members: Vec<(String, String)>,
}

/// This run's account-name prefix: the flag's, or a random one so that runs
/// against the same server never share accounts.
pub fn prefix(common: &CommonArgs) -> String {
    common
        .prefix
        .clone()
        .unwrap_or_else(|| format!("ld{:06x}", rand::random::<u32>() & 0xff_ffff))
}

/// Registers and logs in every name, `setup_concurrency` at a time; returns
/// the tokens in the order of `names`.
pub async fn accounts(
    target: &Target,
    common: &CommonArgs,
    names: &[String],
) -> Result<Vec<String>, LoadError> {
    let started = std::time::Instant::now();
    let total = names.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tokens = stream::iter(names.iter())
        .map(|n| async {
            let token = target.account(n, &common.password).await?;
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if !common.quiet && (d.is_multiple_of(1000) || d == total) {
                eprintln!(
                    "accounts: {d}/{total} ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok::<_, LoadError>(token)
        })
        .buffered(common.setup_concurrency.max(1))
        .try_collect()
        .await?;
    Ok(tokens)
}

/// `count` groups of `members` accounts each (`prefix_<room>_<member>`),
/// created by their first member.
pub async fn rooms(
    target: &Target,
    common: &CommonArgs,
    prefix: &str,
    count: usize,
    members: usize,
) -> Result<Vec<Room>, LoadError> {
    let names: Vec<String> = (0..count)
        .flat_map(|r| (0..members).map(move |m| format!("{prefix}_{r}_{m}")))
        .collect();
    let tokens = accounts(target, common, &names).await?;
    let mut rooms = Vec::with_capacity(count);
    let mut pairs = names.into_iter().zip(tokens);
    for r in 0..count {
        let members: Vec<(String, String)> = pairs.by_ref().take(members).collect();
        let Some((_, creator)) = members.first() else {
            return Err(LoadError::Setup(
                "a conversation needs at least one member".into(),
            ));
        };
        let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let (id, joined) = target
            .group(creator, &format!("{prefix} room {r}"), &names)
            .await?;
        // A server with consent (SPEC v2) invites the creator's strangers.
        let invited: Vec<&str> = members
            .iter()
            .filter(|(n, _)| !joined.contains(n))
            .map(|(_, t)| t.as_str())
            .collect();
        stream::iter(invited)
            .map(|token| target.accept(token, &id))
            .buffer_unordered(common.setup_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        rooms.push(Room { id, members });
    }
    Ok(rooms)
}

/// Opens one session per token, `setup_concurrency` at a time, in order.
pub async fn connect_all(
    target: &Target,
    common: &CommonArgs,
    tokens: &[&str],
) -> Result<Vec<Ws>, LoadError> {
    let started = std::time::Instant::now();
    let total = tokens.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    stream::iter(tokens.iter())
        .map(|t| async {
            let ws = target.connect(t).await?;
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if !common.quiet && (d.is_multiple_of(2000) || d == total) {
                eprintln!(
                    "sessions: {d}/{total} ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok::<_, LoadError>(ws)
        })
        .buffered(common.setup_concurrency.max(1) * 4)
        .try_collect()
        .await
}
