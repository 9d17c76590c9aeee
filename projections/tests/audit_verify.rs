//! `audit verify` against real PostgreSQL: an intact chain passes; an edited, deleted,
//! renumbered, re-ordered, inserted or truncated chain is caught at the first bad seq.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use common::TestDb;
use fixtures::{bulk, project, rows, scenario};
use projections::audit::{self, AuditProjector, AuditRow, ProblemKind, VerifyReport};
use sqlx::PgPool;

/// The scenario's eleven rows, projected live (generation 1, checkpoint `audit_logs`).
async fn chain(db: &TestDb) -> Vec<AuditRow> {
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 100, last).await;
    let rows = rows(&db.pool, 1).await;
    assert_eq!(rows.len(), 11);
    rows
}

async fn tamper(pool: &PgPool, statements: &[&str]) {
    let mut tx = pool.begin().await.expect("begin");
    for sql in statements {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }
    tx.commit().await.expect("commit the tampering");
}

async fn verify(pool: &PgPool) -> VerifyReport {
    audit::verify(pool, None).await.expect("verify")
}

/// Asserts the first problem's seq and kind; returns the report.
async fn caught(pool: &PgPool, seq: i64, kind: ProblemKind) -> VerifyReport {
    let report = verify(pool).await;
    let problem = report
        .first_problem
        .clone()
        .unwrap_or_else(|| panic!("tampering not detected: {report:?}"));
    assert_eq!(
        (problem.seq, problem.kind),
        (seq, kind),
        "{}",
        problem.detail
    );
    assert_eq!(report.rows_checked, u64::try_from(seq - 1).expect("seq"));
    report
}

#[tokio::test]
async fn an_intact_chain_passes() {
    let db = TestDb::create().await;
    let rows = chain(&db).await;
    let report = verify(&db.pool).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.generation, 1);
    assert_eq!(report.rows_checked, 11);
    assert_eq!(report.last_seq, Some(11));
    assert_eq!(report.last_hash.as_deref(), Some(rows[10].hash.as_str()));
    assert_eq!(
        audit::verify(&db.pool, Some(1)).await.expect("verify"),
        report
    );

    let empty = audit::verify(&db.pool, Some(7)).await.expect("verify");
    assert!(empty.is_intact());
    assert_eq!((empty.generation, empty.rows_checked), (7, 0));
}

#[tokio::test]
async fn an_edited_row_is_caught() {
    let db = TestDb::create().await;
    let rows = chain(&db).await;
    tamper(
        &db.pool,
        &[
            "UPDATE audit_logs SET details = jsonb_set(details, '{reason}', '\"looked fine\"') \
           WHERE seq = 5",
        ],
    )
    .await;
    let report = caught(&db.pool, 5, ProblemKind::Edited).await;
    assert_eq!(
        report.first_problem.and_then(|problem| problem.id),
        Some(rows[4].id)
    );
    assert_eq!(report.last_seq, Some(4));
}

#[tokio::test]
async fn an_edited_user_is_caught() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(
        &db.pool,
        &["UPDATE audit_logs SET user_id = 'mallory' WHERE seq = 3"],
    )
    .await;
    caught(&db.pool, 3, ProblemKind::Edited).await;
}

#[tokio::test]
async fn an_edited_time_or_result_is_caught() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(
        &db.pool,
        &[
            "UPDATE audit_logs SET \"timestamp\" = \"timestamp\" + interval '1 microsecond' \
           WHERE seq = 9",
            "UPDATE audit_logs SET result = 'SUCCESS' WHERE seq = 11",
        ],
    )
    .await;
    caught(&db.pool, 9, ProblemKind::Edited).await;
}

#[tokio::test]
async fn a_deleted_row_is_caught() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(&db.pool, &["DELETE FROM audit_logs WHERE seq = 6"]).await;
    let report = caught(&db.pool, 6, ProblemKind::Missing).await;
    assert_eq!(report.first_problem.and_then(|problem| problem.id), None);
}

#[tokio::test]
async fn a_deleted_row_is_caught_even_when_the_rest_is_renumbered() {
    let db = TestDb::create().await;
    let rows = chain(&db).await;
    tamper(
        &db.pool,
        &[
            "DELETE FROM audit_logs WHERE seq = 6",
            "UPDATE audit_logs SET seq = -seq WHERE seq > 6",
            "UPDATE audit_logs SET seq = -seq - 1 WHERE seq < 0",
        ],
    )
    .await;
    let report = caught(&db.pool, 6, ProblemKind::Missing).await;
    let problem = report.first_problem.expect("a problem");
    assert_eq!(problem.id, Some(rows[6].id), "the survivor now at seq 6");
    assert!(
        problem.detail.contains("it was seq 7"),
        "{}",
        problem.detail
    );
}

#[tokio::test]
async fn deleted_rows_at_the_end_are_caught_against_the_checkpoint() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(&db.pool, &["DELETE FROM audit_logs WHERE seq >= 10"]).await;
    caught(&db.pool, 10, ProblemKind::Missing).await;
    tamper(&db.pool, &["DELETE FROM audit_logs"]).await;
    caught(&db.pool, 1, ProblemKind::Missing).await;
}

#[tokio::test]
async fn re_ordered_rows_are_caught() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(
        &db.pool,
        &[
            "UPDATE audit_logs SET seq = -1 WHERE seq = 4",
            "UPDATE audit_logs SET seq = 4 WHERE seq = 7",
            "UPDATE audit_logs SET seq = 7 WHERE seq = -1",
        ],
    )
    .await;
    caught(&db.pool, 4, ProblemKind::OutOfChain).await;
}

#[tokio::test]
async fn an_inserted_row_is_caught() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(
        &db.pool,
        &[
            "UPDATE audit_logs SET seq = -seq WHERE seq >= 5",
            "UPDATE audit_logs SET seq = -seq + 1 WHERE seq < 0",
            "INSERT INTO audit_logs SELECT generation, 5, id + 1000, tenant_id, 'mallory', \
                 'DeleteModel', resource, resource_id, ip_address, user_agent, \"timestamp\", \
                 'SUCCESS', '{}', correlation_id, global_position + 1000, tx_id, hash, \
                 md5('forged') || md5('forged') \
             FROM audit_logs WHERE seq = 4",
        ],
    )
    .await;
    caught(&db.pool, 5, ProblemKind::OutOfChain).await;
}

#[tokio::test]
async fn a_row_appended_outside_the_chain_is_caught() {
    let db = TestDb::create().await;
    chain(&db).await;
    tamper(
        &db.pool,
        &[
            "INSERT INTO audit_logs SELECT generation, 12, id + 1000, tenant_id, user_id, \
               action, resource, resource_id, ip_address, user_agent, \"timestamp\", result, \
               details, correlation_id, global_position, tx_id, md5('x') || md5('y'), hash \
           FROM audit_logs WHERE seq = 3",
        ],
    )
    .await;
    caught(&db.pool, 12, ProblemKind::OutOfChain).await;
}

#[tokio::test]
async fn a_long_chain_is_walked_page_by_page() {
    let db = TestDb::create().await;
    let last = bulk(&db.pool, 12_000).await;
    project(&db.pool, &AuditProjector::live(), 5_000, last).await;
    let report = verify(&db.pool).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 12_000);

    tamper(
        &db.pool,
        &["UPDATE audit_logs SET action = 'Nothing' WHERE seq = 7001"],
    )
    .await;
    caught(&db.pool, 7_001, ProblemKind::Edited).await;
}
