//! Rebuild speed of the audit projector (not run by default; it measures, never asserts a
//! time). Run: `cargo test --release -p projections --test audit_bench -- --ignored
//! --nocapture` (`AUDIT_BENCH_EVENTS` sets the number of events, 1 000 000 by default).
//! Besides wall time it prints the CPU time spent by this process and by the database's
//! backends (from `/proc`, when PostgreSQL runs on the same Linux host), which stays
//! meaningful on a machine busy with other work.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use std::time::Instant;

use common::TestDb;
use fixtures::{new_generation, project};
use projections::audit::{self, AuditProjector};
use projections::generation;

/// Appends `count` events: commands of one or two events (about 1.5 per row), every 20th a
/// rejection record, 100 000 per transaction. Returns the last global position.
async fn history(db: &TestDb, count: i64) -> i64 {
    let mut last = 0;
    let mut from = 1;
    while from <= count {
        let to = (from + 99_999).min(count);
        last = sqlx::query_scalar(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
             SELECT CASE WHEN n % 20 = 0 THEN 'CommandRejection' ELSE 'ProcessModel' END, \
                 CASE WHEN n % 20 = 0 THEN 'r' || n ELSE 'm' || (n * 2 / 3) END, n, \
                 CASE WHEN n % 20 = 0 THEN 'CommandRejected' ELSE 'MetadataChanged' END, '1.0', \
                 CASE WHEN n % 20 = 0 THEN jsonb_build_object('tenantId', 't' || (n % 5), \
                         'command', 'PublishModel', 'resourceType', 'ProcessModel', \
                         'resourceId', 'm' || n, 'reasonCode', 'invalid-model', \
                         'reason', 'no start event') \
                      ELSE jsonb_build_object('MetadataChanged', jsonb_build_object( \
                         'name', 'Model ' || n, 'category', null, 'description', null)) END, \
                 jsonb_build_object('user_id', 'user' || (n % 97), 'tenant_id', 't' || (n % 5), \
                     'client_ip', '10.0.0.' || (n % 250), 'correlation_id', 'req-' || n, \
                     'command', 'UpdateModel', 'time', '2026-01-01T00:00:00.000000Z') \
             FROM generate_series($1::bigint, $2::bigint) AS n \
             RETURNING global_position",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&db.pool)
        .await
        .expect("append events")
        .into_iter()
        .max()
        .unwrap_or(last);
        from = to + 1;
    }
    last
}

/// CPU seconds used so far by the test database's backends and by this process (0 where
/// `/proc` does not show them).
async fn cpu_seconds(db: &TestDb) -> (f64, f64) {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .fetch_all(&db.pool)
        .await
        .expect("backends");
    let server = pids.iter().map(|pid| ticks(&pid.to_string())).sum::<u64>();
    (server as f64 / 100.0, ticks("self") as f64 / 100.0)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

#[tokio::test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn rebuild_speed() {
    let count: i64 = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let db = TestDb::create().await;
    let started = Instant::now();
    let last = history(&db, count).await;
    println!("appended {count} events in {:?}", started.elapsed());
    sqlx::query("ANALYZE events")
        .execute(&db.pool)
        .await
        .expect("analyze");

    new_generation(&db.pool, 2).await;
    let cpu_before = cpu_seconds(&db).await;
    let started = Instant::now();
    project(&db.pool, &AuditProjector::rebuild(2), 5_000, last).await;
    let elapsed = started.elapsed();
    let (server, client) = cpu_seconds(&db).await;
    let (server, client) = (server - cpu_before.0, client - cpu_before.1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs_g2")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    println!(
        "rebuild: {count} events -> {rows} rows in {elapsed:?}: {:.0} events/s; CPU: \
         database {server:.2}s + projector {client:.2}s = {:.0} events per CPU second",
        count as f64 / elapsed.as_secs_f64(),
        count as f64 / (server + client)
    );

    let started = Instant::now();
    let mut conn = db.pool.acquire().await.expect("connection");
    generation::attach_partition(&mut conn, "audit_logs", 2)
        .await
        .expect("attach");
    println!("attach (builds the indexes): {:?}", started.elapsed());

    let started = Instant::now();
    let report = audit::verify(&db.pool, Some(2)).await.expect("verify");
    let elapsed = started.elapsed();
    assert!(report.is_intact(), "{report:?}");
    println!(
        "verify: {} rows in {elapsed:?}: {:.0} rows/s",
        report.rows_checked,
        report.rows_checked as f64 / elapsed.as_secs_f64()
    );
}
