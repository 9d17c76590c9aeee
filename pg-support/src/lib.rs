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
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET plan_cache_mode = force_generic_plan")
                    .await
                    .map(drop)
            })
        })
        .connect_lazy_with((*pool.connect_options()).clone())
}
