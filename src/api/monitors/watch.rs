//! `serve --monitors FILE` (`MCPWATCH_MONITORS_FILE`): the file is applied when the daemon
//! starts (a bad file stops the start, with every problem), again on SIGHUP, and when its
//! content changes. A bad file later is logged, problem by problem, and nothing of it is
//! applied: the daemon keeps what it had.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{MonitorsDocument, PlanView, plan_or_apply};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::monitors::{FileErrors, MonitorsFile};

/// How often the file is looked at for changes. Polling a single file's bytes is cheaper to
/// get right than inotify across editors that replace files by renaming (and the daemon may
/// run where inotify is unavailable, e.g. some container mounts).
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Plans raced by another replica applying the same file are tried this often.
const ATTEMPTS: usize = 3;

/// Why a monitors file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file, or what the daemon found in it (each problem with its line and field).
    #[error("{0}")]
    File(#[from] FileErrors),
    /// The daemon could not apply it (the database, a race); the words say which.
    #[error("{file}: not applied: {reason}")]
    Daemon { file: String, reason: String },
}

/// Read `path` (references from this process's environment), plan and apply it.
pub async fn apply_file(app: &AppState, path: &Path) -> Result<PlanView, WatchError> {
    let env = |name: &str| std::env::var(name).ok();
    let file = MonitorsFile::read::<MonitorsDocument>(path, &env)?;
    let mut attempt = 1;
    loop {
        let doc: MonitorsDocument = file.typed()?;
        match plan_or_apply(app, doc, true).await {
            Ok(view) => return Ok(view),
            Err(ApiError::Invalid(errs)) => {
                return Err(file
                    .errors(errs.into_iter().map(|e| (e.field, e.message)))
                    .into());
            }
            Err(ApiError::Conflict(_)) if attempt < ATTEMPTS => attempt += 1,
            Err(e) => {
                return Err(WatchError::Daemon {
                    file: file.name.clone(),
                    reason: words(e),
                });
            }
        }
    }
}

/// An error's words for a log line (never a secret: the API's messages carry none).
fn words(e: ApiError) -> String {
    match e {
        ApiError::BadRequest(d) | ApiError::NotFound(d) | ApiError::Conflict(d) => d,
        ApiError::Unavailable(d) | ApiError::Unreachable(d) => {
            format!("the database is not available: {d}")
        }
        ApiError::Internal(d) => d,
        other => format!("{other:?}"),
    }
}

/// Log what an apply did.
pub fn report(view: &PlanView, file: &Path) {
    let s = &view.summary;
    tracing::info!(
        file = %file.display(),
        created = s.create,
        changed = s.update,
        deleted = s.delete,
        unchanged = s.unchanged,
        "monitors file applied"
    );
    for g in &view.generated_secrets {
        // The secret itself is never logged: it is the receiver's to verify with.
        tracing::warn!(
            channel = %g.channel,
            "a signing secret was generated for this channel; to know it, give it in the \
             file as secret = \"${{VAR}}\" and apply again"
        );
    }
}

/// The file's bytes as a digest (`None`: unreadable now).
fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(b).into())
}

/// Apply `path` again on SIGHUP and whenever its content changes, until `stop`.
pub fn spawn(app: AppState, path: PathBuf, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut seen = fingerprint(&path);
        let mut hangup = hangups();
        let mut tick = tokio::time::interval(LOOK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let asked = tokio::select! {
                _ = stop.cancelled() => return,
                _ = next_hangup(&mut hangup) => true,
                _ = tick.tick() => false,
            };
            let now = fingerprint(&path);
            if !asked && (now == seen || now.is_none()) {
                continue;
            }
            seen = now;
            match apply_file(&app, &path).await {
                Ok(view) => report(&view, &path),
                Err(e) => tracing::warn!(
                    problems = %e,
                    "monitors file not applied; the daemon keeps what it had"
                ),
            }
        }
    });
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

/// The next SIGHUP (never, where there are none).
async fn next_hangup(h: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = h
        && signal.recv().await.is_some()
    {
        return;
    }
    let _ = h;
    std::future::pending::<()>().await
}
