//! A rebuild needs no DDL rights (ADR 0007): a role with DML on the tables and EXECUTE on
//! migration 0009's generation functions, as deploy/README.md gives the server, rebuilds the
//! audit log, while it cannot create a table of its own.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use common::{assert_sql_state, run_in_drop, TestDb};
use fixtures::{at, command, created, model_counts, project, rows, scenario, CAROL, M2, M3};
use projections::audit::{self, AuditProjector, AuditRebuild};
use projections::models::{ModelsProjector, ModelsRebuild};
use projections::rebuild;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// A login role for one test, with what the server's role gets; dropped with its grants
/// when the test ends, before the database.
struct AppRole {
    name: String,
    db: sqlx::postgres::PgConnectOptions,
}

impl AppRole {
    async fn create(db: &TestDb) -> Self {
        let name = format!("fui_app_{}", uuid::Uuid::new_v4().simple());
        let role = Self {
            name,
            db: db.connect_options(),
        };
        let grants = format!(
            "CREATE ROLE {name} LOGIN;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name};
             GRANT EXECUTE ON FUNCTION generation_table_create(regclass, bigint, integer),
                 generation_table_attach(regclass, bigint), generation_table_drop(regclass, bigint),
                 generation_table_analyze(regclass, bigint) TO {name};",
            name = role.name
        );
        db.pool
            .execute(grants.as_str())
            .await
            .expect("create the role");
        role
    }

    fn options(&self) -> sqlx::postgres::PgConnectOptions {
        self.db.clone().username(&self.name)
    }

    /// A pool logged in as the role.
    async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.options())
            .await
            .expect("connect as the role")
    }
}

impl Drop for AppRole {
    fn drop(&mut self) {
        let (name, db) = (self.name.clone(), self.db.clone());
        run_in_drop(format!("drop role {name}"), move || async move {
            let mut conn = PgConnection::connect_with(&db).await?;
            conn.execute(format!("DROP OWNED BY {name}; DROP ROLE {name}").as_str())
                .await?;
            let _ = conn.close().await;
            Ok(())
        });
    }
}

#[tokio::test]
async fn the_servers_role_rebuilds_without_ddl_rights() {
    let db = TestDb::create().await;
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 100, last).await;
    let live = rows(&db.pool, 1).await;
    let role = AppRole::create(&db).await;
    let pool = role.pool().await;

    let refused = pool
        .execute("CREATE TABLE audit_logs_g9 (LIKE audit_logs)")
        .await
        .expect_err("no DDL rights");
    assert_sql_state(&refused, "42501");

    let report = rebuild::rebuild(&pool, &role.options(), &AuditRebuild, 3, |_| {})
        .await
        .expect("rebuild as the role");
    assert_eq!(report.generation, 2);
    assert_eq!(rows(&db.pool, 2).await, live);
    assert!(
        rows(&db.pool, 1).await.is_empty(),
        "generation 1 is dropped"
    );
    let verified = audit::verify(&db.pool, None).await.expect("verify");
    assert!(verified.is_intact(), "{verified:?}");
    // Analyzed as the owner: the role's own ANALYZE would have skipped the tables.
    let analyzed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stats WHERE tablename IN ('audit_logs', 'audit_logs_g2')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("statistics");
    assert!(analyzed > 0, "the new generation has statistics");
    pool.close().await;
}

#[tokio::test]
async fn the_servers_role_rebuilds_the_models_and_their_counts_follow_its_writes() {
    let db = TestDb::create().await;
    scenario(&db.pool).await;
    let role = AppRole::create(&db).await;
    let pool = role.pool().await;

    let report = rebuild::rebuild(&pool, &role.options(), &ModelsRebuild::default(), 3, |_| {})
        .await
        .expect("rebuild as the role");
    assert_eq!(report.generation, 2);
    let (kept, counted) = model_counts(&db.pool, 2).await;
    assert!(!counted.is_empty(), "the scenario's models are rebuilt");
    assert_eq!(kept, counted, "the attach counted the rebuilt table");

    // The live projector, as the role, moves the counts with the rows it writes (and the
    // triggers leave them to it: counted twice, they would differ): a publish (DRAFT to
    // PUBLISHED), a category change and a new model.
    command(
        &db.pool,
        &CAROL,
        "PublishModel",
        M2,
        3,
        &[("ModelPublished", json!({"version": 1}))],
        at(12),
    )
    .await;
    let renamed = json!({"name": "Invoices", "category": "billing", "description": null});
    command(
        &db.pool,
        &CAROL,
        "UpdateModel",
        M2,
        4,
        &[("MetadataChanged", renamed)],
        at(13),
    )
    .await;
    let last = command(
        &db.pool,
        &CAROL,
        "CreateModel",
        M3,
        1,
        &[("ModelCreated", created("refund", "Refund", "globex"))],
        at(14),
    )
    .await;
    project(&pool, &ModelsProjector::live(), 2, last[0]).await;
    let (kept, counted) = model_counts(&db.pool, 2).await;
    assert_eq!(kept, counted, "the projector moved the counts");
    let globex = |category: Option<&str>, status: &str| {
        (
            "globex".to_owned(),
            category.map(str::to_owned),
            status.to_owned(),
            1,
        )
    };
    let expected = [globex(Some("billing"), "PUBLISHED"), globex(None, "DRAFT")];
    assert!(expected.iter().all(|c| kept.contains(c)), "{kept:?}");

    // Any other writer's rows are counted by the trigger, with the role's rights.
    pool.execute(
        "UPDATE process_models SET status = 'ARCHIVED', category = NULL WHERE generation = 2",
    )
    .await
    .expect("a write as the role");
    let (kept, counted) = model_counts(&db.pool, 2).await;
    assert_eq!(kept, counted, "the trigger moved the counts");
    pool.close().await;
}
