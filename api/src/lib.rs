//! The flowable-ui server: HTTP API, authentication, configuration and the command line.

pub mod admin;
pub mod app;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
mod dev_secret;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod read_side;
pub mod relay;
pub mod telemetry;

pub use app::{AppState, Application};
pub use config::{Profile, Settings};
