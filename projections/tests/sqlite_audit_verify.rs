//! `audit verify` over the SQLite audit log: an intact chain passes; an edited, a deleted,
//! a re-ordered row and rows cut off the end are caught (and a rebuild repairs the log).

#[path = "sqlite_support.rs"]
mod support;

use std::time::Duration;

use projections::audit::{hash, ProblemKind};
use projections::sqlite::{audit, Family, SqliteProjections};
use support::*;

async fn tampered(
    file: &TestFile,
    projections: &SqliteProjections,
    sql: &str,
) -> (i64, ProblemKind) {
    sqlx::raw_sql(sql)
        .execute(&file.pool)
        .await
        .expect("tamper");
    let report = audit::verify(&file.pool).await.expect("verify");
    let problem = report.first_problem.expect("a problem is found");
    projections
        .rebuild(Family::Audit, |_| {})
        .await
        .expect("rebuild repairs the log");
    assert!(audit::verify(&file.pool).await.expect("verify").is_intact());
    (problem.seq, problem.kind)
}

#[tokio::test]
async fn verify_catches_edited_deleted_and_reordered_rows() {
    let file = TestFile::create().await;
    let last = scenario(&file.pool).await;
    let projections = file.projections(500).await;
    let running = start(&projections);
    assert!(projections.wait_for(last, Duration::from_secs(10)).await);
    running.stop().await;

    let report = audit::verify(&file.pool).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.rows_checked, report.last_seq), (11, Some(11)));
    let hashes = audit_rows(&file.pool).await;
    assert_eq!(report.last_hash.as_deref(), Some(hashes[10].hash.as_str()));

    let edit = "UPDATE audit_logs SET user_id = 'mallory' WHERE seq = 4";
    assert_eq!(
        tampered(&file, &projections, edit).await,
        (4, ProblemKind::Edited)
    );
    let details = "UPDATE audit_logs SET details = json_set(details, '$.version', 9) WHERE seq = 2";
    assert_eq!(
        tampered(&file, &projections, details).await,
        (2, ProblemKind::Edited)
    );
    let delete = "DELETE FROM audit_logs WHERE seq = 4";
    assert_eq!(
        tampered(&file, &projections, delete).await,
        (4, ProblemKind::Missing)
    );
    let swap = "UPDATE audit_logs SET seq = -1 WHERE seq = 3; \
                UPDATE audit_logs SET seq = 3 WHERE seq = 4; \
                UPDATE audit_logs SET seq = 4 WHERE seq = -1;";
    assert_eq!(
        tampered(&file, &projections, swap).await,
        (3, ProblemKind::OutOfChain)
    );
    let cut = "DELETE FROM audit_logs WHERE seq >= 10";
    assert_eq!(
        tampered(&file, &projections, cut).await,
        (10, ProblemKind::Missing)
    );
    // A row appended with a correct hash and link: only the projector's checkpoint tells.
    let mut forged = audit_rows(&file.pool).await.pop().expect("row 11");
    forged.prev_hash = forged.hash.clone();
    forged.seq = 12;
    forged.id = 99;
    forged.global_position = 99;
    forged.tx_id = 99;
    forged.user_id = Some("mallory".into());
    forged.hash = hash::compute(&forged);
    let insert = format!(
        "INSERT INTO audit_logs (seq, id, tenant_id, user_id, action, resource, resource_id, \
         ip_address, user_agent, \"timestamp\", result, details, correlation_id, global_position, \
         tx_id, prev_hash, hash) SELECT 12, 99, tenant_id, 'mallory', action, resource, \
         resource_id, ip_address, user_agent, \"timestamp\", result, details, correlation_id, 99, \
         99, '{}', '{}' FROM audit_logs WHERE seq = 11",
        forged.prev_hash, forged.hash
    );
    assert_eq!(
        tampered(&file, &projections, &insert).await,
        (12, ProblemKind::OutOfChain)
    );
}
