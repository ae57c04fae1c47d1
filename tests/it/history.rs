//! Rollups and retention on both backends: rollups follow the results committed (once, even
//! when a batch is re-sent), status reads see only public servers, and pruning works in
//! batches.

use crate::support;
use test_case::test_case;

use mcpwatch::monitor::{RegionState, RegionStatus};
use mcpwatch::store::rollup::{DAY_MS, HOUR_MS};
use mcpwatch::store::{BatchWrites, IncidentRecord, ResultQuery, Scope};
use support::db::{Backend, TestDb};
use support::fixtures::{result, server};

const T0: i64 = 1_790_000_000_000 / DAY_MS * DAY_MS; // a midnight UTC

fn batch(results: Vec<mcpwatch::store::ResultRecord>) -> BatchWrites {
    BatchWrites {
        results,
        ..BatchWrites::default()
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn rollups_count_each_result_once_per_hour_region_and_day(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("a", "alpha", 1)).await.unwrap();
    let mut rs = Vec::new();
    // Hour 0: 3 up in eu (10, 20, 30 ms), 1 timeout in eu; hour 1: 2 up in us.
    for (i, ms) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        let mut r = result(&format!("r{i}"), "a", T0 + i as i64 * 60_000, "eu");
        r.duration_ms = ms;
        rs.push(r);
    }
    let mut fail = result("rf", "a", T0 + 5 * 60_000, "eu");
    fail.verdict = mcpwatch::probe::Verdict::Down;
    fail.failure_kind = Some(mcpwatch::probe::FailureKind::Timeout);
    fail.duration_ms = 10_000.0;
    rs.push(fail);
    for i in 0..2 {
        let mut r = result(&format!("u{i}"), "a", T0 + HOUR_MS + i * 60_000, "us");
        r.duration_ms = 100.0;
        rs.push(r);
    }
    // Committed in two batches, the second re-sending the first's last result.
    s.commit_batch(&batch(rs[..3].to_vec())).await.unwrap();
    s.commit_batch(&batch(rs[2..].to_vec())).await.unwrap();
    // And the whole thing again: nothing may count twice.
    s.commit_batch(&batch(rs.clone())).await.unwrap();

    let stored = s
        .list_results(&ResultQuery {
            server_id: "a".into(),
            page: mcpwatch::store::Page {
                limit: 100,
                after: None,
            },
            ..ResultQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 6, "{backend:?}");

    let hourly = s.hourly_rollups(Scope::Server("a"), T0).await.unwrap();
    assert_eq!(hourly.len(), 2, "{backend:?}: {hourly:?}");
    let eu = &hourly[0];
    assert_eq!((eu.region.as_str(), eu.hour_start), ("eu", T0));
    assert_eq!((eu.probes, eu.successes), (4, 3), "{backend:?}");
    let p50 = eu.p50_ms.unwrap();
    assert!((p50 / 20.0 - 1.0).abs() < 0.05, "{backend:?}: p50 {p50}");
    assert_eq!(eu.max_ms, Some(30.0), "a timeout is not a latency");
    let us = &hourly[1];
    assert_eq!(
        (us.region.as_str(), us.hour_start, us.probes),
        ("us", T0 + HOUR_MS, 2)
    );

    let daily = s.daily_rollups(Scope::Server("a"), T0).await.unwrap();
    assert_eq!(daily.len(), 1);
    assert_eq!(
        (daily[0].day_start, daily[0].probes, daily[0].successes),
        (T0, 6, 5)
    );
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn status_reads_cover_public_servers_only(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("pub", "shown", 1)).await.unwrap();
    let mut private = server("priv", "hidden", 2);
    private.public = false;
    s.insert_server(&private).await.unwrap();
    let mut fail = result("f1", "pub", T0, "eu-west");
    fail.verdict = mcpwatch::probe::Verdict::Down;
    fail.failure_kind = Some(mcpwatch::probe::FailureKind::Timeout);
    fail.failure_phase = Some(mcpwatch::probe::Phase::ToolsList);
    let mut w = batch(vec![fail, result("p1", "priv", T0, "eu-west")]);
    for id in ["pub", "priv"] {
        let mut rs = RegionState::new("eu-west".into());
        rs.status = RegionStatus::Down;
        rs.last_result_at = Some(T0);
        rs.last_verdict = Some(mcpwatch::probe::Verdict::Down);
        w.region_states.push((id.into(), rs));
    }
    w.incidents_opened.push(IncidentRecord {
        id: "i1".into(),
        server_id: "priv".into(),
        kind: "down".into(),
        cause: "x".into(),
        opened_at: T0,
        closed_at: None,
    });
    s.commit_batch(&w).await.unwrap();

    let states = s.public_states().await.unwrap();
    assert_eq!(states.len(), 1, "{backend:?}");
    assert_eq!(states[0].server.slug, "shown");
    let views = s.region_views(Scope::Public).await.unwrap();
    assert_eq!(views.len(), 1, "{backend:?}: {views:?}");
    let last = views[0].last.as_ref().expect("the region's last result");
    assert_eq!((last.at, last.verdict.as_str()), (T0, "down"));
    assert_eq!(last.failure_phase, Some(mcpwatch::probe::Phase::ToolsList));
    assert!(
        s.daily_rollups(Scope::Public, 0)
            .await
            .unwrap()
            .iter()
            .all(|d| d.server_id == "pub")
    );
    assert!(
        s.hourly_rollups(Scope::Public, 0)
            .await
            .unwrap()
            .iter()
            .all(|d| d.server_id == "pub")
    );
    assert!(
        s.incidents_since(Scope::Public, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.incidents_since(Scope::Server("priv"), 0)
            .await
            .unwrap()
            .len(),
        1
    );
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn pruning_goes_in_batches_and_keeps_what_is_recent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("a", "alpha", 1)).await.unwrap();
    // 25 old results over 25 hours, 5 recent ones.
    let mut rs: Vec<_> = (0..25)
        .map(|i| result(&format!("old{i}"), "a", T0 + i * HOUR_MS, "eu"))
        .collect();
    let recent = T0 + 40 * DAY_MS;
    rs.extend((0..5).map(|i| result(&format!("new{i}"), "a", recent + i * 60_000, "eu")));
    s.commit_batch(&batch(rs)).await.unwrap();

    let cutoff = T0 + 30 * DAY_MS;
    let mut rounds = Vec::new();
    loop {
        let n = s.prune_results(cutoff, 10).await.unwrap();
        rounds.push(n);
        if n < 10 {
            break;
        }
    }
    assert_eq!(rounds, vec![10, 10, 5], "{backend:?}");
    let left = s
        .list_results(&ResultQuery {
            server_id: "a".into(),
            page: mcpwatch::store::Page {
                limit: 100,
                after: None,
            },
            ..ResultQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|r| r.id.starts_with("new")));
    // The rollups of the pruned results survive raw retention...
    assert_eq!(
        s.daily_rollups(Scope::Server("a"), 0).await.unwrap().len(),
        3
    );
    // ...until their own retention: 25 old hours + 2 old days, in batches of 10.
    let mut pruned = 0;
    loop {
        let n = s.prune_rollups(cutoff, 10).await.unwrap();
        pruned += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(pruned, 25 + 2, "{backend:?}");
    assert_eq!(
        s.hourly_rollups(Scope::Server("a"), 0).await.unwrap().len(),
        1
    );
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_retention_pass_keeps_what_each_setting_says(backend: Backend) {
    use mcpwatch::store::retention::{Retention, prune_once};
    use std::time::Duration;
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.insert_server(&server("a", "alpha", 1)).await.unwrap();
    let now = T0 + 500 * DAY_MS;
    // One result a day for 450 days.
    let rs: Vec<_> = (0..450)
        .map(|d| result(&format!("r{d}"), "a", now - (d + 1) * DAY_MS + 1, "eu"))
        .collect();
    s.commit_batch(&batch(rs)).await.unwrap();
    let keep = Retention {
        raw: Duration::from_secs(30 * 86_400),
        rollup: Duration::from_secs(400 * 86_400),
    };
    let pruned = prune_once(s.as_ref(), keep, now, 7).await.unwrap();
    assert_eq!(
        pruned.results, 420,
        "{backend:?}: results older than 30 days"
    );
    assert_eq!(
        pruned.rollups,
        2 * 50,
        "{backend:?}: hourly + daily rows older than 400 days"
    );
    assert_eq!(
        s.daily_rollups(Scope::Server("a"), 0).await.unwrap().len(),
        400
    );
    let again = prune_once(s.as_ref(), keep, now, 7).await.unwrap();
    assert_eq!((again.results, again.rollups), (0, 0));
    db.cleanup().await;
}
