//! PostgreSQL connection helpers shared by the write side (`commands`) and the read side
//! (`projections`), which do not depend on each other.

use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

/// A pool of up to `max_connections` connections like `pool`'s whose prepared statements
/// always use their generic plan (`plan_cache_mode = force_generic_plan`), opened on first
/// use.
///
/// For statements of a fixed shape whose arrays' lengths, or position and limit, make a
/// custom plan look cheaper to PostgreSQL, so that its plan cache never settles on the
/// generic plan and it plans them anew on every execution, though the plan is the same
/// (docs/performance.md, "Editor JSON as text; plans made once"). The setting is a `SET`
/// after connecting rather than a startup parameter, which PgBouncer refuses by default.
pub fn generic_plan_pool(pool: &PgPool, max_connections: u32) -> PgPool {
    pool_with_settings(
        pool,
        max_connections,
        "SET plan_cache_mode = force_generic_plan",
    )
}

/// As [`generic_plan_pool`], and its transactions commit without waiting for the WAL flush
/// (`synchronous_commit = off`): for a projector whose step commits its effects and its
/// checkpoint in one statement, with no `BEGIN` to carry a `SET LOCAL` (ADR 0005: a crash
/// loses at most the last steps as a whole, which are applied again from the events).
pub fn projector_step_pool(pool: &PgPool, max_connections: u32) -> PgPool {
    pool_with_settings(
        pool,
        max_connections,
        "SET plan_cache_mode = force_generic_plan; SET synchronous_commit = off",
    )
}

/// Up to `max_connections` connections like `pool`'s, each running `settings` (one simple
/// query) once connected; opened on first use.
fn pool_with_settings(pool: &PgPool, max_connections: u32, settings: &'static str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move { conn.execute(settings).await.map(drop) })
        })
        .connect_lazy_with((*pool.connect_options()).clone())
}
