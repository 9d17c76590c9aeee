//! The `flowable-ui` binary.

use clap::Parser;

/// jemalloc instead of glibc's malloc: glibc keeps what a burst freed (a projection
/// catch-up: ≈ 17 MiB after 10 000 events) in its per-thread arenas for good, jemalloc's
/// background threads give it back within about a second (`.cargo/config.toml` sets the
/// decay). docs/performance.md, "Idle memory", compares the two.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match api::cli::run(api::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
