//! Fresh databases for tests: a temp SQLite file, or a new Postgres database per test on the
//! server at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! A test that cannot reach Postgres fails and says how to start it; it never skips.
#![allow(dead_code)]

use std::sync::Arc;

use mcpwatch::config::DatabaseUrl;
use mcpwatch::store::{self, Store};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that lives as long as this value (Postgres: dropped by `cleanup`).
pub struct TestDb {
    pub url: DatabaseUrl,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = DatabaseUrl::Sqlite(dir.path().join("mcpwatch.db"));
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "Postgres tests need a server at {admin} ({e}). Start it with: \
                         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
                         (or set TEST_DATABASE_URL)"
                        )
                    });
                let name = format!("mcpwatch_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin);
                TestDb {
                    url: DatabaseUrl::Postgres(format!("{base}/{name}")),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// An opened, migrated store.
    pub async fn store(&self) -> Arc<dyn Store> {
        let s = store::open(&self.url, 5).await.unwrap();
        s.migrate().await.unwrap();
        s
    }

    /// The `DATABASE_URL` text for the real binary.
    pub fn url_text(&self) -> String {
        match &self.url {
            DatabaseUrl::Postgres(u) => u.clone(),
            DatabaseUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
        }
    }

    /// Drop the Postgres database (connections are force-closed).
    pub async fn cleanup(mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_database(&name).await;
        }
    }
}

async fn drop_database(name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A test that panics before `cleanup` still drops its database (on a thread of its own: a
/// destructor cannot wait on the test's runtime).
impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}
