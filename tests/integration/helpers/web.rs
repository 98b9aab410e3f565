//! The start of every browser test: chromedriver and a fresh server, or a
//! skip where Chromium is not installed.

use super::{spawn_app, Chromedriver, TestApp};

/// Chromedriver and a fresh server; None (the test is skipped) when
/// Chromium is not installed and `CI` is unset.
pub async fn web_app() -> Option<(Chromedriver, TestApp)> {
    let driver = Chromedriver::start().await?;
    Some((driver, spawn_app().await))
}

/// `let (driver, app) = web_app_or_skip!();`: `web_app()`, returning from
/// the test when it is None. A macro, since only a macro can make the
/// calling test return early.
macro_rules! web_app_or_skip {
    () => {
        match $crate::helpers::web_app().await {
            Some(started) => started,
            None => return,
        }
    };
}
pub(crate) use web_app_or_skip;
