//! Database pool gauges, read at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

#[derive(Debug)]
pub(super) struct PoolCollector<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
}

impl<DB: sqlx::Database> PoolCollector<DB> {
    pub(super) fn new(pool: sqlx::Pool<DB>) -> Self {
        Self { pool }
    }
}

impl<DB: sqlx::Database> Collector for PoolCollector<DB> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        ConstGauge::new(size - idle).encode(encoder.encode_descriptor(
            "db_pool_connections_active",
            "Database connections in use",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(idle).encode(encoder.encode_descriptor(
            "db_pool_connections_idle",
            "Idle database connections",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(i64::from(self.pool.options().get_max_connections())).encode(
            encoder.encode_descriptor(
                "db_pool_connections_max",
                "Maximum database connections",
                None,
                MetricType::Gauge,
            )?,
        )?;
        Ok(())
    }
}
