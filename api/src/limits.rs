//! Abuse limits (on by default in every profile; `APP_LIMITS__ENABLED=false` turns them off,
//! e.g. for load benchmarks): command rate limits per client and per tenant (429 with
//! `Retry-After`), a cap on concurrent SSE streams per tenant, and a rate limit on the
//! audit records of refused commands, so a flood of bad requests cannot fill the event
//! store. Request timeouts, body and header limits are layers of the router.
//!
//! Rate limits are GCRA buckets (governor), kept in memory per replica: with N replicas a
//! client gets up to N times the rate, which is fine for abuse protection (a shared budget
//! would cost a round trip per command).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

/// `limits` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Off: no rate limits and no stream cap (load benchmarks). Body, header and time
    /// limits stay.
    pub enabled: bool,
    /// Commands a client (one user of one tenant) may send per second, sustained.
    pub commands_per_client_per_sec: u32,
    /// How many commands a client may send at once above the sustained rate.
    pub commands_per_client_burst: u32,
    /// Commands all clients of one tenant may send per second, sustained.
    pub commands_per_tenant_per_sec: u32,
    pub commands_per_tenant_burst: u32,
    /// Audit records of refused commands per client per second; refusals beyond it are
    /// answered as usual but not recorded (counted in `commands_rejected_unrecorded_total`).
    pub rejection_records_per_client_per_sec: u32,
    pub rejection_records_per_client_burst: u32,
    /// Concurrent live event streams (SSE) per tenant.
    pub streams_per_tenant: usize,
    /// Largest request body on routes that carry no editor JSON.
    pub small_body_limit_bytes: usize,
    /// Largest total size of a request's header fields (431 above it).
    pub max_header_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            commands_per_client_per_sec: 50,
            commands_per_client_burst: 100,
            commands_per_tenant_per_sec: 500,
            commands_per_tenant_burst: 1000,
            rejection_records_per_client_per_sec: 5,
            rejection_records_per_client_burst: 20,
            streams_per_tenant: 100,
            small_body_limit_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Why a request was refused, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub detail: String,
    pub retry_after: Duration,
}

type Bucket = DefaultKeyedRateLimiter<String>;

/// The limits of one replica. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    per_client: Bucket,
    per_tenant: Bucket,
    rejection_records: Bucket,
    streams_per_tenant: usize,
    streams: Mutex<HashMap<String, usize>>,
}

fn quota(per_sec: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        let inner = settings.enabled.then(|| {
            Arc::new(Inner {
                per_client: RateLimiter::dashmap(quota(
                    settings.commands_per_client_per_sec,
                    settings.commands_per_client_burst,
                )),
                per_tenant: RateLimiter::dashmap(quota(
                    settings.commands_per_tenant_per_sec,
                    settings.commands_per_tenant_burst,
                )),
                rejection_records: RateLimiter::dashmap(quota(
                    settings.rejection_records_per_client_per_sec,
                    settings.rejection_records_per_client_burst,
                )),
                streams_per_tenant: settings.streams_per_tenant,
                streams: Mutex::new(HashMap::new()),
            })
        });
        Self { inner }
    }

    /// No limits at all.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Takes one command from the client's and the tenant's budgets.
    pub fn check_command(&self, tenant: &str, user: &str) -> Result<(), Refused> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let clock = DefaultClock::default();
        inner
            .per_client
            .check_key(&client_key(tenant, user))
            .map_err(|not_until| Refused {
                detail: "too many commands from this client; slow down".into(),
                retry_after: not_until.wait_time_from(clock.now()),
            })?;
        inner
            .per_tenant
            .check_key(&tenant.to_owned())
            .map_err(|not_until| Refused {
                detail: "too many commands for this tenant; slow down".into(),
                retry_after: not_until.wait_time_from(clock.now()),
            })
    }

    /// Whether a refused command of this client may still be recorded in the audit log.
    pub fn record_rejection(&self, tenant: &str, user: &str) -> bool {
        self.inner.as_ref().is_none_or(|inner| {
            inner
                .rejection_records
                .check_key(&client_key(tenant, user))
                .is_ok()
        })
    }

    /// A slot for one live stream of `tenant`, released when the slot is dropped.
    pub fn open_stream(&self, tenant: &str) -> Result<StreamSlot, Refused> {
        let Some(inner) = &self.inner else {
            return Ok(StreamSlot { release: None });
        };
        let mut streams = inner.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let open = streams.entry(tenant.to_owned()).or_insert(0);
        if *open >= inner.streams_per_tenant {
            return Err(Refused {
                detail: format!(
                    "this tenant already has {} live event streams open",
                    inner.streams_per_tenant
                ),
                retry_after: Duration::from_secs(5),
            });
        }
        *open += 1;
        Ok(StreamSlot {
            release: Some((inner.clone(), tenant.to_owned())),
        })
    }

    /// Forgets idle clients' buckets (they are full again by now) so memory stays bounded.
    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner {
            for bucket in [
                &inner.per_client,
                &inner.per_tenant,
                &inner.rejection_records,
            ] {
                bucket.retain_recent();
                bucket.shrink_to_fit();
            }
        }
    }
}

fn client_key(tenant: &str, user: &str) -> String {
    // A separator that cannot occur in a tenant id: no collisions between tenants.
    format!("{tenant}\u{1f}{user}")
}

/// One open live stream; dropping it frees the slot.
pub struct StreamSlot {
    release: Option<(Arc<Inner>, String)>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some((inner, tenant)) = self.release.take() {
            let mut streams = inner.streams.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(open) = streams.get_mut(&tenant) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    streams.remove(&tenant);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight() -> LimitSettings {
        LimitSettings {
            commands_per_client_per_sec: 1,
            commands_per_client_burst: 2,
            commands_per_tenant_per_sec: 1,
            commands_per_tenant_burst: 3,
            rejection_records_per_client_per_sec: 1,
            rejection_records_per_client_burst: 1,
            streams_per_tenant: 2,
            ..LimitSettings::default()
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_a_retry_time() {
        let limits = Limits::new(&tight());
        assert!(limits.check_command("acme", "alice").is_ok());
        assert!(limits.check_command("acme", "alice").is_ok());
        let refused = limits.check_command("acme", "alice").expect_err("over");
        assert!(refused.detail.contains("client"));
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= Duration::from_secs(1));
        // Another client of the tenant still has its own budget, until the tenant's is gone.
        assert!(limits.check_command("acme", "bob").is_ok());
        let refused = limits.check_command("acme", "carol").expect_err("tenant");
        assert!(refused.detail.contains("tenant"));
        // Other tenants are not affected.
        assert!(limits.check_command("globex", "alice").is_ok());
    }

    #[test]
    fn stream_slots_are_capped_per_tenant_and_freed_on_drop() {
        let limits = Limits::new(&tight());
        let first = limits.open_stream("acme").expect("first");
        let _second = limits.open_stream("acme").expect("second");
        assert!(limits.open_stream("acme").is_err());
        assert!(limits.open_stream("globex").is_ok());
        drop(first);
        assert!(limits.open_stream("acme").is_ok());
    }

    #[test]
    fn rejection_records_are_rate_limited_per_client() {
        let limits = Limits::new(&tight());
        assert!(limits.record_rejection("acme", "mallory"));
        assert!(!limits.record_rejection("acme", "mallory"));
        assert!(limits.record_rejection("acme", "alice"));
    }

    #[test]
    fn disabled_limits_allow_everything() {
        let limits = Limits::new(&LimitSettings {
            enabled: false,
            ..tight()
        });
        for _ in 0..100 {
            assert!(limits.check_command("acme", "alice").is_ok());
            assert!(limits.record_rejection("acme", "alice"));
        }
        let slots: Vec<_> = (0..10).map(|_| limits.open_stream("acme")).collect();
        assert!(slots.iter().all(Result::is_ok));
    }
}
