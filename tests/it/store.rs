//! The Store contract, run against SQLite and Postgres alike (a fresh database per test).

use crate::support;
use test_case::test_case;

use mcpwatch::monitor::{RegionState, RegionStatus, ServerState, ServerStatus};
use mcpwatch::store::{
    ApiKeyRecord, BatchWrites, EventRecord, IncidentRecord, Page, ResultQuery, Scope,
    SnapshotRecord, StoreError,
};
use serde_json::json;
use support::db::{Backend, TestDb};
use support::fixtures::{result, server};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn servers_crud_slug_conflict_and_pagination(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.ready().await.unwrap();
    s.insert_server(&server("id-1", "alpha", 1)).await.unwrap();
    s.insert_server(&server("id-2", "beta", 2)).await.unwrap();
    s.insert_server(&server("id-3", "gamma", 2)).await.unwrap();
    let dup = s
        .insert_server(&server("id-4", "alpha", 3))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(ref m) if m.contains("alpha")),
        "{backend:?}: {dup}"
    );

    let by_slug = s.get_server("beta").await.unwrap().unwrap();
    assert_eq!(
        by_slug,
        server("id-2", "beta", 2),
        "{backend:?}: round trip"
    );
    assert_eq!(s.get_server("id-2").await.unwrap().unwrap().slug, "beta");
    assert!(s.get_server("nope").await.unwrap().is_none());

    let first = s
        .list_servers(&Page {
            limit: 2,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|s| s.slug.as_str()).collect::<Vec<_>>(),
        vec!["alpha", "beta"]
    );
    let last = &first[1];
    let next = s
        .list_servers(&Page {
            limit: 2,
            after: Some((last.created_at, last.id.clone())),
        })
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|s| s.slug.as_str()).collect::<Vec<_>>(),
        vec!["gamma"]
    );

    let mut changed = by_slug.clone();
    changed.paused = true;
    changed.tags = vec!["a".into(), "b".into()];
    s.update_server(&changed).await.unwrap();
    assert_eq!(s.get_server("id-2").await.unwrap().unwrap(), changed);
    assert!(s.delete_server("id-2").await.unwrap());
    assert!(!s.delete_server("id-2").await.unwrap());
    assert_eq!(s.all_servers().await.unwrap().len(), 2);
    s.close().await;
    db.cleanup().await;
}

/// The reads the scheduler's change feed is made of, and (Postgres) the doorbell that rings
/// when any replica writes a server: on insert, on an edit that moves `updated_at`, on delete.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_change_feed_reads_what_was_written_and_postgres_rings(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let bell = s.server_changes(stop.clone());
    assert_eq!(bell.is_some(), backend == support::db::Backend::Postgres);
    // The listener rings once when it starts listening; take that ring first.
    let rings = async |what: &str| {
        if let Some(bell) = &bell {
            tokio::time::timeout(std::time::Duration::from_secs(10), bell.notified())
                .await
                .unwrap_or_else(|_| panic!("{backend:?}: no ring after {what}"));
        }
    };
    rings("LISTEN").await;
    s.insert_server(&server("id-1", "alpha", 1)).await.unwrap();
    rings("insert").await;
    s.insert_server(&server("id-2", "beta", 2)).await.unwrap();
    rings("insert").await;
    let mut edited = server("id-2", "beta", 2);
    edited.updated_at = 50;
    edited.paused = true;
    s.update_server(&edited).await.unwrap();
    rings("an edit").await;

    let changed = s.server_versions(Some(40)).await.unwrap();
    assert_eq!(changed, vec![("id-2".to_string(), 50)], "{backend:?}");
    let mut versions = s.server_versions(None).await.unwrap();
    versions.sort();
    let first_at = server("id-1", "alpha", 1).updated_at;
    assert_eq!(
        versions,
        vec![("id-1".to_string(), first_at), ("id-2".to_string(), 50)],
        "{backend:?}"
    );
    let ids = ["id-2".to_string(), "nope".to_string()];
    assert_eq!(s.servers_by_id(&ids).await.unwrap(), vec![edited]);
    assert!(s.delete_server("id-1").await.unwrap());
    rings("a delete").await;
    assert_eq!(s.count_servers().await.unwrap(), 1, "{backend:?}");
    stop.cancel();
    s.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_batch_writes_everything_and_reads_back(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("srv", "srv", 1)).await.unwrap();
    let mut region = RegionState::new("local".into());
    region.status = RegionStatus::Down;
    region.consecutive_failures = 2;
    let state = ServerState {
        status: ServerStatus::Down,
        since: 100,
        schema_hash: Some("sha256:aa".into()),
        server_version: Some("1.0".into()),
        protocol_version: None,
        last_result_at: Some(100),
        open_incident_id: Some("inc-1".into()),
    };
    let w = BatchWrites {
        results: vec![
            result("r1", "srv", 90, "local"),
            result("r2", "srv", 100, "local"),
            result("r3", "srv", 100, "eu"),
        ],
        region_states: vec![("srv".into(), region.clone())],
        server_states: vec![("srv".into(), state.clone())],
        events: vec![EventRecord {
            id: "e1".into(),
            server_id: Some("srv".into()),
            kind: "server.down".into(),
            at: 100,
            payload: json!({"to": "down"}),
        }],
        incidents_opened: vec![IncidentRecord {
            id: "inc-1".into(),
            server_id: "srv".into(),
            kind: "down".into(),
            cause: "timeout".into(),
            opened_at: 100,
            closed_at: None,
        }],
        incidents_closed: vec![],
        snapshots: vec![SnapshotRecord {
            server_id: "srv".into(),
            hash: "sha256:aa".into(),
            interface_hash: "sha256:bb".into(),
            tools: json!([{"name": "a"}]),
            first_seen: 90,
            last_seen: 90,
        }],
        era_hints: vec![("srv".into(), "stateless".into())],

        ..BatchWrites::default()
    };
    s.commit_batch(&w).await.unwrap();
    let (loaded, regions) = s.load_state("srv").await.unwrap();
    assert_eq!(loaded.unwrap(), state, "{backend:?}");
    assert_eq!(regions, vec![region]);
    assert_eq!(
        s.get_server("srv")
            .await
            .unwrap()
            .unwrap()
            .era_hint
            .as_deref(),
        Some("stateless")
    );

    // Results: newest first, filters, keyset pages.
    let q = |region: Option<&str>, after: Option<(i64, String)>| ResultQuery {
        server_id: "srv".into(),
        since: Some(50),
        until: None,
        region: region.map(String::from),
        page: Page { limit: 2, after },
    };
    let page = s.list_results(&q(None, None)).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["r3", "r2"]
    );
    assert_eq!(
        page[0],
        result("r3", "srv", 100, "eu"),
        "{backend:?}: round trip"
    );
    let rest = s
        .list_results(&q(None, Some((100, "r2".into()))))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["r1"]
    );
    let eu = s.list_results(&q(Some("eu"), None)).await.unwrap();
    assert_eq!(eu.len(), 1);
    assert_eq!(s.last_result("srv").await.unwrap().unwrap().id, "r3");

    // Snapshots upsert last_seen; incidents close; events list.
    let mut again = w.snapshots[0].clone();
    again.last_seen = 500;
    let close = BatchWrites {
        snapshots: vec![again],
        incidents_closed: vec![("inc-1".into(), "s1".into(), 600)],
        ..BatchWrites::default()
    };
    s.commit_batch(&close).await.unwrap();
    let snap = s.get_snapshot("srv", "sha256:aa").await.unwrap().unwrap();
    assert_eq!((snap.first_seen, snap.last_seen), (90, 500));
    assert_eq!(snap.tools, json!([{"name": "a"}]));
    assert_eq!(s.list_snapshots("srv").await.unwrap().len(), 1);
    let incidents = s
        .list_incidents(
            Some("srv"),
            &Page {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(incidents[0].closed_at, Some(600));
    let events = s
        .list_events(
            None,
            Some("server.down"),
            &Page {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(events[0].payload, json!({"to": "down"}));
    assert!(
        s.list_events(
            None,
            Some("server.up"),
            &Page {
                limit: 10,
                after: None
            }
        )
        .await
        .unwrap()
        .is_empty()
    );

    let all = s.all_states().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state.as_ref().unwrap().status, ServerStatus::Down);
    assert_eq!(all[0].regions.len(), 1);
    s.close().await;
    db.cleanup().await;
}

/// `commit_batch` writes set-based: a batch larger than one statement's bound parameters,
/// keys written twice in one batch (the last write wins, as row by row), a re-sent batch
/// (stored once, counted once), and a tool list sent whole only when it is new.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_batch_merges_repeated_keys_and_spans_statements(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("srv", "srv", 1)).await.unwrap();
    let hour = 1_800_000_000_000 / 3_600_000 * 3_600_000;
    // 1,300 results × 24 columns: more than one statement's worth of bound values.
    let results: Vec<_> = (0..1_300)
        .map(|i| result(&format!("r{i}"), "srv", hour + i, "local"))
        .collect();
    let mut first = RegionState::new("local".into());
    first.status = RegionStatus::Up;
    let mut last = first.clone();
    last.status = RegionStatus::Down;
    last.consecutive_failures = 4;
    let state = |status, since| ServerState {
        status,
        since,
        schema_hash: None,
        server_version: None,
        protocol_version: None,
        last_result_at: None,
        open_incident_id: None,
    };
    let snapshot = |seen| SnapshotRecord {
        server_id: "srv".into(),
        hash: "sha256:aa".into(),
        interface_hash: "sha256:bb".into(),
        tools: json!([{"name": "a"}]),
        first_seen: seen,
        last_seen: seen,
    };
    let w = BatchWrites {
        results,
        region_states: vec![("srv".into(), first), ("srv".into(), last.clone())],
        server_states: vec![
            ("srv".into(), state(ServerStatus::Up, 1)),
            ("srv".into(), state(ServerStatus::Down, 2)),
        ],
        snapshots: vec![snapshot(hour + 5), snapshot(hour + 1), snapshot(hour + 9)],
        era_hints: vec![
            ("srv".into(), "session".into()),
            ("srv".into(), "stateless".into()),
        ],
        ..BatchWrites::default()
    };
    s.commit_batch(&w).await.unwrap();
    // Sent again (a retry after an unknown outcome): nothing is stored or counted twice.
    s.commit_batch(&w).await.unwrap();

    let (loaded, regions) = s.load_state("srv").await.unwrap();
    assert_eq!(
        regions,
        vec![last],
        "{backend:?}: the last region write wins"
    );
    assert_eq!(loaded.unwrap(), state(ServerStatus::Down, 2), "{backend:?}");
    let srv = s.get_server("srv").await.unwrap().unwrap();
    assert_eq!(srv.era_hint.as_deref(), Some("stateless"), "{backend:?}");
    let snap = s.get_snapshot("srv", "sha256:aa").await.unwrap().unwrap();
    assert_eq!((snap.first_seen, snap.last_seen), (hour + 1, hour + 9));
    let days = s.daily_rollups(Scope::Server("srv"), 0).await.unwrap();
    assert_eq!(days.len(), 1, "{backend:?}");
    assert_eq!(
        (days[0].probes, days[0].successes),
        (1_300, 1_300),
        "{backend:?}"
    );
    let hours = s.hourly_rollups(Scope::Server("srv"), 0).await.unwrap();
    assert_eq!(hours[0].probes, 1_300, "{backend:?}");
    let all = s
        .list_results(&ResultQuery {
            server_id: "srv".into(),
            page: Page {
                limit: 5_000,
                after: None,
            },
            ..ResultQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1_300, "{backend:?}");

    // A later sighting of the known list moves last_seen only; its rollups add up.
    let next = BatchWrites {
        results: vec![result("later", "srv", hour + 2_000, "local")],
        snapshots: vec![snapshot(hour + 2_000)],
        ..BatchWrites::default()
    };
    s.commit_batch(&next).await.unwrap();
    let snap = s.get_snapshot("srv", "sha256:aa").await.unwrap().unwrap();
    assert_eq!((snap.first_seen, snap.last_seen), (hour + 1, hour + 2_000));
    let days = s.daily_rollups(Scope::Server("srv"), 0).await.unwrap();
    assert_eq!(days[0].probes, 1_301, "{backend:?}");
    s.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn results_for_a_deleted_server_do_not_wedge_a_batch(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("kept", "kept", 1)).await.unwrap();
    let w = BatchWrites {
        results: vec![
            result("a", "gone", 1, "local"),
            result("b", "kept", 1, "local"),
        ],
        server_states: vec![("gone".into(), ServerState::new(1))],
        ..BatchWrites::default()
    };
    s.commit_batch(&w).await.unwrap();
    let kept = s
        .list_results(&ResultQuery {
            server_id: "kept".into(),
            page: Page {
                limit: 10,
                after: None,
            },
            ..ResultQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "{backend:?}");
    s.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn api_keys_are_found_by_hash_and_deleted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let key = ApiKeyRecord {
        id: "k1".into(),
        name: "ci".into(),
        prefix: "mcpw_abc".into(),
        hash: "h1".into(),
        scopes: vec!["read".into()],
        created_at: 1,
        last_used_at: None,
        region: None,
    };
    s.insert_key(&key).await.unwrap();
    assert_eq!(s.find_key("h1").await.unwrap().unwrap(), key, "{backend:?}");
    s.touch_key("k1", 9).await.unwrap();
    assert_eq!(s.list_keys().await.unwrap()[0].last_used_at, Some(9));
    assert!(s.delete_key("k1").await.unwrap());
    assert!(s.find_key("h1").await.unwrap().is_none());
    s.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_files_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpwatch.db");
    let store: std::sync::Arc<dyn mcpwatch::store::Store> =
        std::sync::Arc::new(mcpwatch::store::SqliteStore::open(&path).await.unwrap());
    store.migrate().await.unwrap();
    store
        .insert_server(&server("id-1", "alpha", 1))
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

#[tokio::test]
async fn postgres_connection_errors_name_the_address_and_the_cause() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://postgres:hunter22@127.0.0.1:{refused}/x");
    let err = mcpwatch::store::PostgresStore::connect(&url, 2)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{refused}")) && err.contains("connection refused"),
        "{err}"
    );
    assert!(!err.contains("hunter22"), "{err}");
    let err = mcpwatch::store::PostgresStore::connect(
        &support::db::admin_url().replace("postgres@", "no_such_role_here@"),
        2,
    )
    .await
    .err()
    .expect("unknown role")
    .to_string();
    assert!(
        err.contains("no_such_role_here") && err.contains(":5432"),
        "{err}"
    );
}

/// Rows written before URL credentials were sealed are sealed at start, once.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn plaintext_url_credentials_are_sealed_at_start(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.migrate().await.unwrap();
    let mut old = server("id-1", "alpha", 1);
    old.url = "https://mcp.example.com/mcp?token=plain-text-secret".into();
    s.insert_server(&old).await.unwrap();
    let sealer = mcpwatch::secrets::Sealer::new(&[7; 32]);
    mcpwatch::app::seal_url_credentials(s.as_ref(), &sealer)
        .await
        .unwrap();
    let row = s.get_server("alpha").await.unwrap().unwrap();
    assert_eq!(
        row.url, "https://mcp.example.com/mcp?token=***",
        "{backend:?}"
    );
    let opened = sealer.open(row.url_enc.as_deref().unwrap()).unwrap();
    assert_eq!(opened, old.url.as_bytes(), "{backend:?}");
    mcpwatch::app::seal_url_credentials(s.as_ref(), &sealer)
        .await
        .unwrap();
    assert_eq!(
        s.get_server("alpha").await.unwrap().unwrap(),
        row,
        "idempotent"
    );
}

/// Two server ids in different buckets.
fn ids_in_two_buckets() -> (String, String) {
    use mcpwatch::shard::bucket_of;
    let a = "srv-a".to_string();
    let b = (0..)
        .map(|i| format!("srv-b{i}"))
        .find(|b| bucket_of(b) != bucket_of(&a))
        .unwrap();
    (a, b)
}

/// Bucket leases: a replica takes the buckets it wants that are free or expired (never one
/// another replica holds), renews them under the same term, lets go of those it no longer
/// wants; a bucket taken over gets a higher term.
#[tokio::test]
async fn bucket_leases_are_taken_renewed_and_released_by_term() {
    let db = TestDb::new(support::db::Backend::Postgres).await;
    let s = db.store().await;
    assert!(s.sharded());
    let live = s.heartbeat("one").await.unwrap();
    assert_eq!(live, vec!["one".to_string()]);
    let held = s.settle_buckets("one", &[1, 2, 3]).await.unwrap();
    assert_eq!(held.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    let again = s.settle_buckets("one", &[1, 2, 3]).await.unwrap();
    assert_eq!(again, held, "renewed under the same terms");
    // Another replica wants bucket 2 too: held by "one", not taken.
    assert_eq!(s.heartbeat("two").await.unwrap(), vec!["one", "two"]);
    let two = s.settle_buckets("two", &[2, 4]).await.unwrap();
    assert_eq!(two.keys().copied().collect::<Vec<_>>(), vec![4]);
    // "one" lets go of 2: "two" takes it at its next look, under a higher term.
    let one = s.settle_buckets("one", &[1, 3]).await.unwrap();
    assert_eq!(one.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    let two = s.settle_buckets("two", &[2, 4]).await.unwrap();
    assert!(two[&2] > held[&2], "{two:?} after {held:?}");
    // "one" leaves: its heartbeat and buckets go at once.
    s.leave("one").await;
    assert_eq!(s.heartbeat("two").await.unwrap(), vec!["two"]);
    let two = s.settle_buckets("two", &[1, 2, 3, 4]).await.unwrap();
    assert_eq!(two.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    s.close().await;
    db.cleanup().await;
}

/// A replica cut off from the database whose bucket was taken over meanwhile: its batch,
/// committed when the database is back, stores the results (facts) but none of the states,
/// events or alerts it decided for the servers of that bucket; its decisions for a bucket it
/// still holds are written, and so are the new owner's.
#[tokio::test]
async fn a_batch_decided_under_a_bucket_lost_meanwhile_stores_facts_only_for_that_bucket() {
    use mcpwatch::shard::{Fence, bucket_of};
    use sqlx::Connection;
    let db = TestDb::new(support::db::Backend::Postgres).await;
    let s = db.store().await;
    let (kept, moved) = ids_in_two_buckets();
    s.insert_server(&server(&kept, "kept", 1)).await.unwrap();
    s.insert_server(&server(&moved, "moved", 1)).await.unwrap();
    let (bk, bm) = (bucket_of(&kept), bucket_of(&moved));
    let old = s.settle_buckets("old", &[bk, bm]).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url_text()).await.unwrap();
    sqlx::query("UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1")
        .bind(mcpwatch::shard::lease_name(bm))
        .execute(&mut conn)
        .await
        .unwrap();
    let new = s.settle_buckets("new", &[bm]).await.unwrap();
    assert!(new[&bm] > old[&bm], "a take-over raises the term");
    let down = |server: &str, id: &str| {
        let mut state = ServerState::new(1);
        state.status = ServerStatus::Down;
        (
            result(id, server, 1_800_000_000_000, "local"),
            (server.to_string(), state),
            EventRecord {
                id: format!("event-{id}"),
                server_id: Some(server.into()),
                kind: "server.down".into(),
                at: 100,
                payload: json!({"to": "down"}),
            },
        )
    };
    let fence = |holder: &str, held: &std::collections::BTreeMap<u16, i64>| Fence {
        holder: holder.into(),
        buckets: held.iter().map(|(b, t)| (*b, *t)).collect(),
    };
    let (r1, s1, e1) = down(&kept, "r-kept");
    let (r2, s2, e2) = down(&moved, "r-moved-old");
    let stale = BatchWrites {
        results: vec![r1, r2],
        server_states: vec![s1, s2],
        events: vec![e1, e2],
        fence: Some(fence("old", &old)),
        ..BatchWrites::default()
    };
    s.commit_batch(&stale).await.unwrap();
    let page = Page {
        limit: 10,
        after: None,
    };
    let results = |id: &str| ResultQuery {
        server_id: id.into(),
        page: page.clone(),
        ..ResultQuery::default()
    };
    assert_eq!(
        s.list_results(&results(&moved)).await.unwrap().len(),
        1,
        "the fact"
    );
    assert!(
        s.load_state(&moved).await.unwrap().0.is_none(),
        "no state for the moved one"
    );
    let (kept_state, _) = s.load_state(&kept).await.unwrap();
    assert_eq!(
        kept_state.unwrap().status,
        ServerStatus::Down,
        "the kept one's is written"
    );
    let events = s.list_events(None, None, &page).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].server_id.as_deref(), Some(kept.as_str()));

    let (r3, s3, e3) = down(&moved, "r-moved-new");
    let fresh = BatchWrites {
        results: vec![r3],
        server_states: vec![s3],
        events: vec![e3],
        fence: Some(fence("new", &new)),
        ..BatchWrites::default()
    };
    s.commit_batch(&fresh).await.unwrap();
    let (state, _) = s.load_state(&moved).await.unwrap();
    assert_eq!(state.unwrap().status, ServerStatus::Down);
    assert_eq!(s.list_events(None, None, &page).await.unwrap().len(), 2);
    s.close().await;
    db.cleanup().await;
}

/// A result handed off to another replica waits in the database for its bucket's owner,
/// once however often it is handed off, and goes once its result is stored (or its server
/// is gone).
#[tokio::test]
async fn handed_off_results_wait_for_their_owner_and_go_once_stored() {
    use mcpwatch::shard::bucket_of;
    let db = TestDb::new(support::db::Backend::Postgres).await;
    let s = db.store().await;
    let (a, b) = ids_in_two_buckets();
    s.insert_server(&server(&a, "a", 1)).await.unwrap();
    s.insert_server(&server(&b, "b", 1)).await.unwrap();
    let row = |id: &str, server: &str| mcpwatch::store::HandoffRecord {
        id: id.into(),
        bucket: bucket_of(server),
        server_id: server.into(),
        payload: "{}".into(),
        created_at: 5,
    };
    let w = BatchWrites {
        handoff: vec![row("h1", &a), row("h2", &b)],
        ..BatchWrites::default()
    };
    s.commit_batch(&w).await.unwrap();
    s.commit_batch(&w).await.unwrap();
    let mine = s.take_handoff(&[bucket_of(&a)], 10).await.unwrap();
    assert_eq!(
        mine,
        vec![row("h1", &a)],
        "once, and only the owner's bucket"
    );
    assert_eq!(
        s.clear_handoff(&["h1".into()]).await.unwrap(),
        0,
        "not stored yet"
    );
    let stored = BatchWrites {
        results: vec![result("h1", &a, 10, "eu")],
        ..BatchWrites::default()
    };
    s.commit_batch(&stored).await.unwrap();
    assert_eq!(s.clear_handoff(&["h1".into()]).await.unwrap(), 1);
    s.delete_server(&b).await.unwrap();
    assert_eq!(
        s.clear_handoff(&["h2".into()]).await.unwrap(),
        1,
        "server gone"
    );
    assert!(
        s.take_handoff(&[bucket_of(&a), bucket_of(&b)], 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.close().await;
    db.cleanup().await;
}

/// Run one statement on the test database behind the store's back.
async fn raw_sql(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url_text())
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url_text()).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_stored_value_that_does_not_read_back_is_named_not_guessed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("s1", "one", 1)).await.unwrap();
    let w = BatchWrites {
        results: vec![result("r1", "s1", 10, "eu")],
        ..Default::default()
    };
    s.commit_batch(&w).await.unwrap();
    assert_eq!(s.last_result("s1").await.unwrap().unwrap().id, "r1");

    raw_sql(&db, "UPDATE probe_results SET verdict = 'sideways'").await;
    match s.last_result("s1").await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("unknown Verdict 'sideways'"), "{m}"),
        other => panic!("{backend:?}: expected Corrupt, got {other:?}"),
    }
    raw_sql(&db, "UPDATE servers SET tags = 'not json'").await;
    match s.get_server("s1").await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("tags"), "{m}"),
        other => panic!("{backend:?}: expected Corrupt, got {other:?}"),
    }
    s.close().await;
    db.cleanup().await;
}
