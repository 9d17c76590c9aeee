//! Test support for the NATS relay: a uniquely named JetStream stream per test (deleted
//! when the test ends), a private `nats-server` for outage tests, event rows with tenants,
//! running the relay, and reading back everything a stream holds.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use projections::relay::{
    ensure_stream, subscribe_live, Envelope, NatsRelay, RelaySettings, StartFrom,
};
use projections::{feed, Position, ProjectorHandle, ProjectorRunner, RunnerConfig};
use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

/// The shared test server; override with `TEST_NATS_URL`.
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Settings with a stream name and subject prefix no other test uses.
pub fn unique_settings(url: &str) -> RelaySettings {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    RelaySettings {
        url: url.to_owned(),
        stream: format!("FT_RELAY_{unique}"),
        subject_prefix: format!("ft.{unique}"),
        max_age: Duration::from_secs(15 * 60),
        max_bytes: 256 * 1024 * 1024,
        duplicate_window: Duration::from_secs(2 * 60),
        ack_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        reconnect_max_delay: Duration::from_millis(250),
        ..RelaySettings::default()
    }
}

/// A stream of its own for one test, deleted when dropped.
pub struct TestStream {
    pub settings: RelaySettings,
    pub js: jetstream::Context,
}

impl TestStream {
    /// Creates the stream on the server at `url`.
    pub async fn create(url: &str) -> Self {
        let settings = unique_settings(url);
        let client = projections::relay::connect(&settings, "relay test")
            .await
            .expect("connect to the test NATS server");
        let js = settings.jetstream(client);
        // The shared server can refuse a create while other tests delete their streams: a CI
        // run failed with "error creating store for stream" (10049), the server logging
        // `mkdir …/jetstream/$G/streams: no such file or directory` (the account's store
        // directory had gone with the deleted streams). The relay marks itself degraded on
        // a failed `ensure_stream` and probes again; a test retries here, a few times.
        let mut attempt = 1;
        while let Err(error) = ensure_stream(&js, &settings).await {
            assert!(attempt < 5, "create the test stream: {error:?}");
            eprintln!("creating the test stream failed (attempt {attempt}), retrying: {error}");
            sleep(Duration::from_millis(100 * attempt)).await;
            attempt += 1;
        }
        Self { settings, js }
    }

    /// Every message the stream holds, in stream order.
    pub async fn contents(&self) -> Vec<Envelope> {
        stream_contents(&self.js, &self.settings).await
    }

    /// How many messages the stream holds.
    pub async fn message_count(&self) -> u64 {
        let mut stream = self
            .js
            .get_stream(&self.settings.stream)
            .await
            .expect("stream");
        stream.info().await.expect("stream info").state.messages
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(settings.url.as_str())
                    .await?;
                let js = jetstream::new(client);
                js.delete_stream(&settings.stream).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!(
                "could not delete test stream {}: {deleted:?}",
                self.settings.stream
            );
        }
    }
}

/// Every message `settings`' stream holds now, in stream order.
pub async fn stream_contents(js: &jetstream::Context, settings: &RelaySettings) -> Vec<Envelope> {
    let mut stream = js.get_stream(&settings.stream).await.expect("stream");
    let count = stream.info().await.expect("stream info").state.messages;
    let count = usize::try_from(count).expect("count");
    if count == 0 {
        return Vec::new();
    }
    let events = subscribe_live(js, settings, None, StartFrom::Beginning)
        .await
        .expect("subscribe");
    let read = events.take(count).map(|item| item.expect("an envelope"));
    timeout(Duration::from_secs(20), read.collect::<Vec<_>>())
        .await
        .expect("read the whole stream in time")
}

/// A private `nats-server` with JetStream on a free port and its own store directory,
/// killed and its directory removed when dropped.
pub struct PrivateNats {
    pub port: u16,
    pub store: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub async fn start() -> Self {
        let port = free_port();
        let store =
            std::env::temp_dir().join(format!("relay-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).expect("create the NATS store directory");
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and store, and waits until it accepts
    /// connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(nats_server_binary())
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let address = format!("127.0.0.1:{}", self.port);
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn nats_server_binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Appends one `ProcessModel` event of `tenant` (metadata `tenant_id`, `correlation_id`),
/// as postgres-es would; returns its global position.
pub async fn append_model_event<'e>(
    executor: impl PgExecutor<'e>,
    tenant: &str,
    aggregate_id: &str,
    sequence: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('ProcessModel', $1, $2, 'MetadataChanged', '1.0', \
                 jsonb_build_object('MetadataChanged', jsonb_build_object('name', 'n' || $2)), \
                 jsonb_build_object('tenant_id', $3::text, 'user_id', 'u', 'correlation_id', 'req-' || $1 || '-' || $2, 'command', 'UpdateModel')) \
         RETURNING global_position",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .bind(tenant)
    .fetch_one(executor)
    .await
}

/// Appends a `CommandRejected` record whose tenant is in the payload only.
pub async fn append_rejection<'e>(
    executor: impl PgExecutor<'e>,
    tenant: &str,
    rejection_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('CommandRejection', $1, 1, 'CommandRejected', '1.0', \
                 jsonb_build_object('tenantId', $2::text, 'command', 'PublishModel', 'resourceType', 'ProcessModel', \
                                    'resourceId', null, 'reasonCode', 'invalid-model', 'reason', 'bad'), \
                 jsonb_build_object('user_id', 'u')) \
         RETURNING global_position",
    )
    .bind(rejection_id)
    .bind(tenant)
    .fetch_one(executor)
    .await
}

/// Committed events in feed order: (position, tenant).
pub async fn feed_order(pool: &PgPool) -> Vec<(Position, Option<String>)> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = feed::read_batch(pool, after, 1000)
            .await
            .expect("read the feed");
        let Some(last) = batch.last() else {
            return all;
        };
        after = last.position();
        all.extend(
            batch
                .iter()
                .map(|event| (event.position(), projections::relay::tenant_of(event))),
        );
    }
}

/// The last committed event's feed position (also when the feed still holds it back
/// behind another test's open transaction: xids are cluster-wide).
pub async fn head(pool: &PgPool) -> Position {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM events \
         ORDER BY tx_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .expect("read the head");
    row.map_or(Position::START, |(tx_id, global_position)| {
        Position::new(tx_id.parse().expect("an xid8"), global_position)
    })
}

/// A runner configuration that reacts within milliseconds.
pub fn fast_config() -> RunnerConfig {
    RunnerConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(100),
        lock_retry_interval: Duration::from_millis(100),
        lock_check_interval: Duration::from_millis(100),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(250),
        wait_poll_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

/// A relay runner in a task of its own.
pub struct RunningRelay {
    pub relay: Arc<NatsRelay>,
    pub handle: ProjectorHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningRelay {
    /// Connects the relay (as the API should before starting the runner: a batch refused
    /// while the first connection is under way makes the runner retry that batch one
    /// event per transaction) and starts its runner.
    pub async fn start(pool: &PgPool, settings: &RelaySettings, config: RunnerConfig) -> Self {
        let relay = Arc::new(NatsRelay::new(settings.clone()));
        assert!(
            relay.wait_ready(Duration::from_secs(10)).await,
            "the relay did not connect: {:?}",
            relay.status()
        );
        let runner = ProjectorRunner::new(pool.clone(), relay.clone(), config);
        let handle = runner.handle();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(runner.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Self {
            relay,
            handle,
            stop,
            task,
        }
    }

    /// Waits until the relay has published everything committed so far.
    pub async fn caught_up(&self, pool: &PgPool, limit: Duration) {
        let target = head(pool).await;
        assert!(
            self.handle.wait_for(target, limit).await,
            "the relay did not catch up to {target} (status {:?}, relay {:?})",
            self.handle.status(),
            self.relay.status()
        );
    }

    pub async fn stop(self) {
        self.stop.send(true).expect("runner is listening");
        self.task.await.expect("runner task");
    }
}
