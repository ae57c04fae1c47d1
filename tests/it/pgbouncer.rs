//! Behind a real PgBouncer in transaction pooling mode (`DATABASE_URL` with
//! `?pooler=transaction`): the store migrates and carries a concurrent workload with many
//! clients on two server sessions, and the real binary probes, stores and alerts. Without the
//! parameter the failure names the fix.

use crate::support;
use support::eventually;

use std::sync::Arc;
use std::time::Duration;

use mcpwatch::config::DatabaseUrl;
use mcpwatch::store::{self, BatchWrites, Page, ResultQuery, Store};
use support::admin::Admin;
use support::db::{Backend, TestDb};
use support::fake_mcp::{FakeConfig, FakeServer, Fault};
use support::fixtures::{result, server};
use support::pgbouncer::PgBouncer;
use support::proc::serve_on;
use support::webhook_rx::Receiver;

async fn open_through(bouncer: &PgBouncer, db: &TestDb, query: &str, conns: u32) -> Arc<dyn Store> {
    let url = format!("{}{query}", bouncer.url_for(&db.url_text()));
    store::open(&DatabaseUrl::Postgres(url), conns)
        .await
        .expect("connect through pgbouncer")
}

/// One client's share of the workload: servers written, a batch of results each, read back.
async fn client_work(s: Arc<dyn Store>, client: usize) {
    for round in 0..10 {
        let id = format!("c{client}-r{round}");
        s.insert_server(&server(&id, &id, (client * 100 + round) as i64))
            .await
            .unwrap_or_else(|e| panic!("insert {id}: {e}"));
        let results = (0..5)
            .map(|i| result(&format!("{id}-{i}"), &id, 1_800_000_000_000 + i, "local"))
            .collect();
        let batch = BatchWrites {
            results,
            ..BatchWrites::default()
        };
        s.commit_batch(&batch)
            .await
            .unwrap_or_else(|e| panic!("batch {id}: {e}"));
        assert_eq!(s.get_server(&id).await.unwrap().unwrap().slug, id);
        let stored = s
            .list_results(&ResultQuery {
                server_id: id.clone(),
                page: Page {
                    limit: 50,
                    after: None,
                },
                ..ResultQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 5, "{id}");
    }
}

#[tokio::test]
async fn the_store_migrates_and_works_through_a_transaction_pooler() {
    let db = TestDb::new(Backend::Postgres).await;
    let bouncer = PgBouncer::start(2);
    let s = open_through(&bouncer, &db, "?pooler=transaction", 8).await;
    // Migrated through the bouncer, twice (the second finds nothing to do); then concurrent
    // clients: eight connections share two server sessions, so parse, bind and transactions
    // of one client land on sessions others used a moment before.
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    s.ready().await.unwrap();
    let clients: Vec<_> = (0..8)
        .map(|c| tokio::spawn(client_work(s.clone(), c)))
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(s.all_servers().await.unwrap().len(), 80);
    s.close().await;
    // The migration bookkeeping is sqlx's own: a direct connection finds nothing to do.
    let direct = db.store().await;
    assert_eq!(direct.all_servers().await.unwrap().len(), 80);
    direct.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn without_the_pooler_parameter_the_error_names_it() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store().await.close().await;
    // One server session for everyone: the second client's first prepared statement takes
    // the name the first client's took on that session.
    let bouncer = PgBouncer::start(1);
    let first = open_through(&bouncer, &db, "", 1).await;
    let second = open_through(&bouncer, &db, "", 1).await;
    first.get_server("x").await.unwrap();
    let err = second.get_server("x").await.unwrap_err().to_string();
    assert!(err.contains("?pooler=transaction"), "{err}");
    first.close().await;
    second.close().await;
    db.cleanup().await;
}

const ADMIN: &str = "bouncer-admin-token-0123456789abcdef";

/// The daemon through the bouncer: it leads, probes, stores results and delivers the alert
/// when the target fails.
#[tokio::test]
async fn the_daemon_probes_stores_and_alerts_through_a_transaction_pooler() {
    let db = TestDb::new(Backend::Postgres).await;
    let bouncer = PgBouncer::start(2);
    let fake = FakeServer::start(FakeConfig::default()).await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}?pooler=transaction", bouncer.url_for(&db.url_text()));
    let data = dir.path().join("data");
    let (_daemon, base) = serve_on(&url, ADMIN, &data, dir.path(), "serve-pgbouncer", &[]);
    let api = Admin::new(&base, ADMIN);
    api.watch_for_down("t", &fake.url(), &rx.url).await;
    eventually("a stored up result", Duration::from_secs(20), async || {
        api.get("/api/v1/servers/t").await.1["state"] == "up"
    })
    .await;
    fake.update(|c| {
        c.fault = Fault::Html200;
        c.fault_on = "*";
    });
    eventually("the alert", Duration::from_secs(30), async || {
        !rx.received().is_empty()
    })
    .await;
    let alert = &rx.received()[0];
    assert!(
        String::from_utf8_lossy(&alert.body).contains("server.down"),
        "{}",
        String::from_utf8_lossy(&alert.body)
    );
    let (_, stored) = api.get("/api/v1/servers/t/results?limit=50").await;
    let items = stored["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.iter().any(|r| r["failure"].is_null())
            && items.iter().any(|r| !r["failure"].is_null()),
        "{stored}"
    );
    let (_, events) = api.get("/api/v1/events?type=server.down").await;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    db.cleanup().await;
}
