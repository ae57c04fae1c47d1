//! Postgres connections, directly or through a transaction-pooling PgBouncer.
//!
//! Behind PgBouncer in transaction pooling mode (`?pooler=transaction` on `DATABASE_URL`)
//! every transaction may run on a different server session, and a statement outside a
//! transaction may too, between its parse and its bind (sqlx sends them in two round trips).
//! So nothing may outlive a transaction: sqlx's prepared statements, named and cached per
//! client connection, would be missing on the next session or clash with another client's of
//! the same name. In that mode, and only then:
//! - the pool caches no statements;
//! - every statement run on the pool runs in a transaction of its own (parse and bind stay on
//!   one session);
//! - every transaction begins by dropping the prepared statements the session holds from
//!   other clients (`DEALLOCATE ALL`), so our fresh names never clash.
//!
//! `LISTEN` and session advisory locks do not survive either: the change feed polls
//! (`cluster_sql.rs`) and migrations take a transaction-scoped lock (`sql.rs`). Directly
//! connected (or through session pooling) the pool is sqlx's own, unchanged.
//!
//! Hand-written because sqlx has no such mode (launchbadge/sqlx#67 is open) and PgBouncer 1.18
//! (Debian 12) does not track prepared statements.

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::{Either, Execute, Executor, PgPool, Postgres, Transaction};

use super::{StoreError, StoreResult};

/// What sits between us and Postgres, from `DATABASE_URL`'s `pooler` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// Postgres itself, or a pooler in session mode (one server session per client
    /// connection): prepared statements are cached per connection.
    Direct,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`): nothing outlives
    /// a transaction.
    Transaction,
}

/// The URL parameter naming the pooler (ours; removed before sqlx reads the URL).
const PARAM: &str = "pooler";

/// Split our `pooler` parameter off a Postgres URL: the URL for sqlx, and the mode.
pub fn split_pooler(url: &str) -> StoreResult<(String, Pooler)> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not a URL we can read: sqlx reports what is wrong with it.
        return Ok((url.to_string(), Pooler::Direct));
    };
    let mut pooler = Pooler::Direct;
    let mut rest = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if key == PARAM {
            pooler = match &*value {
                "transaction" => Pooler::Transaction,
                "session" | "none" => Pooler::Direct,
                other => {
                    return Err(StoreError::Database(format!(
                        "DATABASE_URL: pooler={other} is not a pooling mode; use \
                         pooler=transaction (PgBouncer pool_mode = transaction), \
                         pooler=session or pooler=none"
                    )));
                }
            };
        } else {
            rest.push((key.into_owned(), value.into_owned()));
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((parsed.to_string(), pooler))
}

/// What begins every transaction behind a transaction pooler: the session may hold prepared
/// statements of other clients (whose names ours could take).
const BEGIN_POOLED: &str = "BEGIN; DEALLOCATE ALL";

/// The Postgres pool, run as [`Pooler`] requires. Used wherever a `PgPool` would be: as an
/// executor (`.fetch_all(&pool)`) and by [`PgConnections::begin`].
#[derive(Debug, Clone)]
pub struct PgConnections {
    pool: PgPool,
    pooler: Pooler,
}

impl PgConnections {
    pub fn new(pool: PgPool, pooler: Pooler) -> Self {
        PgConnections { pool, pooler }
    }

    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    /// A transaction; behind a transaction pooler it starts on a session cleared of other
    /// clients' prepared statements.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        match self.pooler {
            Pooler::Direct => self.pool.begin().await,
            Pooler::Transaction => self.pool.begin_with(BEGIN_POOLED).await,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool itself, for what needs a session of its own (`LISTEN`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl<'p> Executor<'p> for &'_ PgConnections {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if self.pooler == Pooler::Direct {
            return self.pool.fetch_many(query);
        }
        // In a transaction of its own; the rows are collected before it commits (every
        // caller here reads the whole answer anyway).
        let this = self.clone();
        let rows = async move {
            let mut tx = this.begin().await?;
            let items: Vec<_> = (&mut *tx).fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(stream::iter(items.into_iter().map(Ok)))
        };
        stream::once(rows).try_flatten().boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if self.pooler == Pooler::Direct {
            return self.pool.fetch_optional(query);
        }
        let this = self.clone();
        Box::pin(async move {
            let mut tx = this.begin().await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [sqlx::postgres::PgTypeInfo],
    ) -> BoxFuture<'e, Result<sqlx::postgres::PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.pool.clone();
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e>(
        self,
        sql: sqlx::SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>> {
        let pool = self.pool.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}

/// What to tell an operator whose error is a pooler symptom ([`is_pooler_symptom`]).
pub const POOLER_HINT: &str = "a transaction-pooling PgBouncer between us and Postgres? add ?pooler=transaction to DATABASE_URL";

/// `e` as text, with [`POOLER_HINT`] when it is a pooler symptom.
pub fn explain(e: &sqlx::Error) -> String {
    if is_pooler_symptom(e) {
        format!("{e} ({POOLER_HINT})")
    } else {
        e.to_string()
    }
}

/// Whether `e` is what a transaction pooler does to prepared statements (a name missing on,
/// or already taken on, the session a statement landed on).
pub fn is_pooler_symptom(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("26000") | Some("42P05"))
                && db.message().contains("prepared statement")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pooler_parameter_is_read_and_removed() {
        let (url, p) = split_pooler("postgres://u@h:6432/db?pooler=transaction").unwrap();
        assert_eq!(
            (url.as_str(), p),
            ("postgres://u@h:6432/db", Pooler::Transaction)
        );
        let (url, p) =
            split_pooler("postgres://u@h/db?sslmode=require&pooler=session&application_name=x")
                .unwrap();
        assert_eq!(p, Pooler::Direct);
        assert_eq!(url, "postgres://u@h/db?sslmode=require&application_name=x");
        let (url, p) = split_pooler("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(
            (url.as_str(), p),
            ("postgres://u@h/db?sslmode=disable", Pooler::Direct)
        );
    }

    #[test]
    fn an_unknown_pooling_mode_is_refused_by_name() {
        let err = split_pooler("postgres://u:secret@h/db?pooler=statement")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pooler=statement") && err.contains("pooler=transaction"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
    }
}
