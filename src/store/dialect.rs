//! What differs between SQLite and Postgres, and nothing else: placeholder syntax, row locks,
//! the pool type, migrations, and running a [`Statement`]. The SQL and the logic over it are
//! written once, as ordinary generic code over this trait (`sql.rs`, `status_sql.rs`,
//! `region_sql.rs`); rows decode through `#[derive(sqlx::FromRow)]` types ([`Decoded`]).

use std::borrow::Cow;

use async_trait::async_trait;
use sqlx::database::HasStatementCache;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Encode, FromRow, Postgres, Sqlite, Transaction, Type};

use super::pooler::PgConnections;
use super::statement::{Arg, Statement};
use super::{StoreError, StoreResult};

/// A row type both backends can decode (every `#[derive(sqlx::FromRow)]` record here).
pub trait Decoded:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Decoded for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// Where a statement runs: on the pool (a connection per statement) or in a transaction.
pub enum Exec<'a, D: Dialect> {
    Pool(&'a D::Pool),
    Tx(&'a mut Transaction<'static, D>),
}

/// One backend.
#[async_trait]
pub trait Dialect: Database {
    /// The connection pool (Postgres: run as its pooler requires).
    type Pool: Send + Sync + 'static;
    /// `sqlite` or `postgres`.
    const BACKEND: &'static str;
    /// Appended to the outbox claim's subquery: Postgres skips rows another dispatcher holds;
    /// SQLite serializes writers, so a plain `UPDATE … WHERE id IN (SELECT …)` is atomic.
    const CLAIM_LOCK: &'static str;
    /// Keeps the leadership row from changing holder until the batch commits.
    const SHARE_LOCK: &'static str;
    /// Locks rollup rows read for a rewrite in the same transaction.
    const UPDATE_LOCK: &'static str;

    /// The statement text in this backend's placeholder syntax.
    fn sql(text: &str) -> Cow<'_, str>;
    /// The embedded migrations.
    fn migrations() -> &'static Migrator;
    async fn migrate(pool: &Self::Pool) -> StoreResult<()>;
    async fn begin(pool: &Self::Pool) -> StoreResult<Transaction<'static, Self>>;
    async fn close(pool: &Self::Pool);
    /// The rows `st` returns.
    async fn fetch(ex: Exec<'_, Self>, st: &Statement<'_>) -> StoreResult<Vec<Self::Row>>;
    /// How many rows `st` changed.
    async fn execute(ex: Exec<'_, Self>, st: &Statement<'_>) -> StoreResult<u64>;
    fn decode<T: Decoded>(row: &Self::Row) -> StoreResult<T>;
}

/// Our dynamic SQL is assembled from constant fragments only; every value is a bound
/// parameter, never spliced in. That is what this marks for sqlx.
pub(super) fn audited(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_string())
}

/// `?` → `$1`, `$2`, … (our SQL never has `?` in a literal).
pub(super) fn numbered(sql: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

/// `st` as a sqlx query for `DB`, every [`Arg`] bound in order.
fn query<'q, DB>(st: &'q Statement<'_>, sql: &str) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: Database + HasStatementCache,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    let q = sqlx::query(audited(sql)).persistent(st.reuse);
    st.args.iter().fold(q, |q, arg| match arg {
        Arg::Text(v) => q.bind(v.as_deref()),
        Arg::Int(v) => q.bind(*v),
        Arg::Real(v) => q.bind(*v),
        Arg::Bool(v) => q.bind(*v),
    })
}

#[async_trait]
impl Dialect for Sqlite {
    type Pool = sqlx::SqlitePool;
    const BACKEND: &'static str = "sqlite";
    const CLAIM_LOCK: &'static str = "";
    const SHARE_LOCK: &'static str = "";
    const UPDATE_LOCK: &'static str = "";

    fn sql(text: &str) -> Cow<'_, str> {
        Cow::Borrowed(text)
    }

    fn migrations() -> &'static Migrator {
        &super::sql::SQLITE_MIGRATIONS
    }

    async fn migrate(pool: &Self::Pool) -> StoreResult<()> {
        super::sql::SQLITE_MIGRATIONS
            .run(pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn begin(pool: &Self::Pool) -> StoreResult<Transaction<'static, Self>> {
        Ok(pool.begin().await?)
    }

    async fn close(pool: &Self::Pool) {
        pool.close().await;
    }

    async fn fetch(ex: Exec<'_, Self>, st: &Statement<'_>) -> StoreResult<Vec<SqliteRow>> {
        let q = query(st, &st.sql);
        Ok(match ex {
            Exec::Pool(pool) => q.fetch_all(pool).await?,
            Exec::Tx(tx) => q.fetch_all(&mut **tx).await?,
        })
    }

    async fn execute(ex: Exec<'_, Self>, st: &Statement<'_>) -> StoreResult<u64> {
        let q = query(st, &st.sql);
        let done = match ex {
            Exec::Pool(pool) => q.execute(pool).await?,
            Exec::Tx(tx) => q.execute(&mut **tx).await?,
        };
        Ok(done.rows_affected())
    }

    fn decode<T: Decoded>(row: &SqliteRow) -> StoreResult<T> {
        Ok(T::from_row(row)?)
    }
}

#[async_trait]
impl Dialect for Postgres {
    type Pool = PgConnections;
    const BACKEND: &'static str = "postgres";
    const CLAIM_LOCK: &'static str = "FOR UPDATE SKIP LOCKED";
    const SHARE_LOCK: &'static str = "FOR SHARE";
    const UPDATE_LOCK: &'static str = "FOR UPDATE";

    fn sql(text: &str) -> Cow<'_, str> {
        numbered(text)
    }

    fn migrations() -> &'static Migrator {
        &super::sql::POSTGRES_MIGRATIONS
    }

    async fn migrate(pool: &Self::Pool) -> StoreResult<()> {
        super::sql::migrate_postgres(pool).await
    }

    async fn begin(pool: &Self::Pool) -> StoreResult<Transaction<'static, Self>> {
        Ok(pool.begin().await?)
    }

    async fn close(pool: &Self::Pool) {
        pool.close().await;
    }

    async fn fetch(ex: Exec<'_, Self>, st: &Statement<'_>) -> StoreResult<Vec<PgRow>> {
        let sql = numbered(&st.sql);
        let q = query(st, &sql);
        Ok(match ex {
            Exec::Pool(pool) => q.fetch_all(pool).await?,
            Exec::Tx(tx) => q.fetch_all(&mut **tx).await?,
        })
    }

    async fn execute(ex: Exec<'_, Self>, st: &Statement<'_>) -> StoreResult<u64> {
        let sql = numbered(&st.sql);
        let q = query(st, &sql);
        let done = match ex {
            Exec::Pool(pool) => q.execute(pool).await?,
            Exec::Tx(tx) => q.execute(&mut **tx).await?,
        };
        Ok(done.rows_affected())
    }

    fn decode<T: Decoded>(row: &PgRow) -> StoreResult<T> {
        Ok(T::from_row(row)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            <Postgres as Dialect>::sql("SELECT ? , ?, x = ?"),
            "SELECT $1 , $2, x = $3"
        );
        assert_eq!(<Sqlite as Dialect>::sql("SELECT ?"), "SELECT ?");
    }
}
