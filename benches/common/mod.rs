//! What the benches share: knobs from the environment and a throwaway Postgres database.
#![allow(dead_code)]

use mcpwatch::config::DatabaseUrl;
use sqlx::Connection;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A database for one bench run: a fresh Postgres database (dropped by [`BenchDb::drop_pg`])
/// on the server at `TEST_DATABASE_URL`, or a SQLite file in `dir`.
pub struct BenchDb {
    pub url: DatabaseUrl,
    admin: String,
    pg_name: Option<String>,
}

impl BenchDb {
    pub async fn create(backend: &str, dir: &std::path::Path) -> BenchDb {
        let admin = env_or(
            "TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        if backend != "postgres" {
            let url = DatabaseUrl::Sqlite(dir.join("mcpwatch.db"));
            return BenchDb {
                url,
                admin,
                pg_name: None,
            };
        }
        let name = format!("mcpwatch_bench_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("Postgres reachable at TEST_DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        let url = DatabaseUrl::Postgres(format!("{base}/{name}"));
        BenchDb {
            url,
            admin,
            pg_name: Some(name),
        }
    }

    /// Drop the Postgres database, if this run made one.
    pub async fn drop_pg(self) {
        let Some(name) = self.pg_name else { return };
        let mut c = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await;
    }
}
