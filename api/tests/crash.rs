//! The real binary under load, killed with SIGKILL and started again, and two replicas on
//! one database: the read tables end up exactly as a rebuild from the event store makes
//! them, and one replica at a time runs each projector.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, PgPool};

const BIN: &str = env!("CARGO_BIN_EXE_flowable-ui");
const SECRET: &str = "crash-test-secret-0123456789abcdef0123";

fn server() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Probes every 20 ms until `probe` gives a value; fails with the last probe's account once
/// `within` has passed.
async fn eventually<T, F, Fut>(within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(Instant::now() < deadline, "{last}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    async fn start(database: &str) -> Self {
        Self::start_with(database, &[]).await
    }

    async fn start_with(database: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("serve")
            .envs(env.iter().copied())
            .env("APP_PROFILE", "test")
            .env("DATABASE_URL", format!("{}/{database}", server()))
            .env("JWT_SECRET", SECRET)
            .env("SERVER_PORT", port.to_string())
            .env("APP_SERVER__HOST", "127.0.0.1")
            // The load here provokes crashes mid-batch, not throttling.
            .env("APP_LIMITS__ENABLED", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start flowable-ui");
        let replica = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let readiness = format!("{}/actuator/health/readiness", replica.base);
        eventually(Duration::from_secs(30), || async {
            let ready = client
                .get(&readiness)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ready
                .then_some(())
                .ok_or("replica did not become ready".to_owned())
        })
        .await;
        replica
    }

    fn kill(&mut self) {
        // SIGKILL: no shutdown hook runs.
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Database(String);

impl Database {
    async fn create() -> Self {
        let name = format!("fui_crash_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", server()))
            .await
            .expect("admin");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create");
        Self(name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async {
                    let mut admin =
                        sqlx::PgConnection::connect(&format!("{}/postgres", server())).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await
                })
                .map_err(std::io::Error::other)
        })
        .join();
    }
}

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "load", "tenant_id": "acme", "privileges": ["access-modeler", "access-admin"], "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

/// Writers creating and editing models until the server goes or `until`; returns how many
/// commands succeeded, and counts them in `acked` as they do.
async fn load(base: String, writer: usize, acked: Arc<AtomicUsize>, until: Instant) -> usize {
    let client = reqwest::Client::new();
    let token = token();
    let mut ok = 0;
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let created = client
            .post(format!("{base}/api/v1/process-models"))
            .bearer_auth(&token)
            .json(&json!({"key": format!("w{writer}n{n}"), "name": "Load"}))
            .send()
            .await;
        let Ok(created) = created else { break };
        if !created.status().is_success() {
            continue;
        }
        ok += 1;
        acked.fetch_add(1, Ordering::Relaxed);
        let Ok(body) = created.json::<Value>().await else {
            break;
        };
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        for edit in 0..3 {
            let response = client
                .patch(format!("{base}/api/v1/process-models/{id}"))
                .bearer_auth(&token)
                .json(&json!({"description": format!("edit {edit}")}))
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    ok += 1;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => return ok,
            }
        }
    }
    ok
}

async fn wait_caught_up(pool: &PgPool) {
    eventually(Duration::from_secs(60), || async {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events e, projection_checkpoints c
              WHERE c.name = 'process_models' AND (e.tx_id, e.global_position) > (c.tx_id, c.global_position)",
        )
        .fetch_one(pool)
        .await
        .expect("lag");
        match behind {
            0 => Ok(()),
            _ => Err(format!("projection did not catch up ({behind} behind)")),
        }
    })
    .await;
}

/// Waits until no session is connected to `database` (the killed process's backends end
/// once they notice its sockets closed, after finishing the statement they run).
async fn wait_sessions_ended(database: &str) {
    let admin = PgPool::connect(&format!("{}/postgres", server()))
        .await
        .expect("admin");
    eventually(Duration::from_secs(30), || async {
        let sessions: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(database)
                .fetch_one(&admin)
                .await
                .expect("sessions");
        match sessions {
            0 => Ok(()),
            _ => Err(format!(
                "the killed process's {sessions} sessions did not end"
            )),
        }
    })
    .await;
    admin.close().await;
}

async fn table(pool: &PgPool, generation_sql: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(m) - 'generation' FROM process_models m WHERE generation = {generation_sql} ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .expect("table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_and_matches_a_rebuild() {
    let db = Database::create().await;
    let mut replica = Replica::start(&db.0).await;
    let started = Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let until = started + Duration::from_secs(60);
            tokio::spawn(load(replica.base.clone(), w, acked.clone(), until))
        })
        .collect();
    // Killed under load: after 700 ms and some acknowledged commands (a debug build on a
    // busy machine may take longer than that for its first ones).
    eventually(Duration::from_secs(30), || async {
        let loaded =
            started.elapsed() >= Duration::from_millis(700) && acked.load(Ordering::Relaxed) >= 20;
        loaded
            .then_some(())
            .ok_or("no load reached the server".to_owned())
    })
    .await;
    replica.kill();
    // An append the killed process had sent still commits without it, possibly after the
    // restart (its commit waits for the WAL flush and the cluster-wide NOTIFY lock): until
    // then it is in neither the live table nor the count of events behind the projector,
    // but a later rebuild has it. Its sessions' end is the moment the store is final.
    wait_sessions_ended(&db.0).await;
    let mut acknowledged = 0;
    for writer in writers {
        acknowledged += writer.await.expect("writer");
    }
    assert!(
        acknowledged > 0,
        "some commands went through before the kill"
    );

    let replica = Replica::start(&db.0).await;
    let pool = PgPool::connect(&format!("{}/{}", server(), db.0))
        .await
        .expect("pool");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'ProcessModel'")
            .fetch_one(&pool)
            .await
            .expect("events");
    assert!(
        events >= acknowledged as i64,
        "every acknowledged command is stored ({events} < {acknowledged})"
    );
    wait_caught_up(&pool).await;
    let live = table(&pool, "1").await;
    let models: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT aggregate_id) FROM events WHERE aggregate_type = 'ProcessModel'",
    )
    .fetch_one(&pool)
    .await
    .expect("models");
    assert_eq!(live.len() as i64, models, "one row per model stream");

    // A rebuild from the event store produces the same table.
    let status = Command::new(BIN)
        .args(["projections", "rebuild", "process_models"])
        .env("APP_PROFILE", "test")
        .env("DATABASE_URL", format!("{}/{}", server(), db.0))
        .env("JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("rebuild");
    assert!(status.success());
    let rebuilt = table(&pool, "2").await;
    let differing: Vec<_> = live
        .iter()
        .zip(&rebuilt)
        .filter(|(l, r)| l != r)
        .take(3)
        .collect();
    assert!(
        live.len() == rebuilt.len() && differing.is_empty(),
        "the rebuild differs from the live table ({} vs {} rows); first differing (live, rebuilt): {differing:#?}",
        live.len(),
        rebuilt.len()
    );
    drop(replica);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_the_projectors_and_fail_over() {
    let db = Database::create().await;
    let mut first = Replica::start(&db.0).await;
    let second = Replica::start(&db.0).await;
    let client = reqwest::Client::new();
    let token = token();
    let states = |base: String| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let status: Value = client
                .get(format!("{base}/api/v1/admin/projections"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("status")
                .json()
                .await
                .expect("json");
            status["data"]
                .as_array()
                .expect("data")
                .iter()
                .find(|p| p["name"] == "process_models")
                .map(|p| p["state"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        }
    };
    // Ready is not yet started: a runner is IDLE until it first tries the lock.
    for (replica, expected) in [(&first, "RUNNING"), (&second, "STANDBY")] {
        eventually(Duration::from_secs(30), || async {
            let state = states(replica.base.clone()).await;
            assert!(
                state == expected || state == "IDLE",
                "{} is {state}, expected {expected}",
                replica.base
            );
            if state == expected {
                Ok(())
            } else {
                Err(format!(
                    "{} stayed {state}, expected {expected}",
                    replica.base
                ))
            }
        })
        .await;
    }

    // Writes through either replica are read back at once from either.
    let created: Value = client
        .post(format!("{}/api/v1/process-models", second.base))
        .bearer_auth(&token)
        .json(&json!({"key": "shared", "name": "Shared"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let read = client
        .get(format!("{}/api/v1/process-models/{id}", first.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 200);

    first.kill();
    eventually(Duration::from_secs(30), || async {
        let running = states(second.base.clone()).await == "RUNNING";
        running
            .then_some(())
            .ok_or("the standby did not take over".to_owned())
    })
    .await;
    let response = client
        .patch(format!("{}/api/v1/process-models/{id}", second.base))
        .bearer_auth(&token)
        .json(&json!({"description": "after fail-over"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("x-read-your-writes").is_none(),
        "the new active replica projects it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_tail_prints_relayed_events_and_needs_nats() {
    let db = Database::create().await;
    let stream = format!("FUI_TAIL_{}", uuid::Uuid::new_v4().simple());
    let prefix = format!("fuitail.{}", stream.to_lowercase());
    let nats = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let env = [
        ("NATS_URL", nats.as_str()),
        ("APP_NATS__STREAM", stream.as_str()),
        ("APP_NATS__SUBJECT_PREFIX", prefix.as_str()),
    ];
    let replica = Replica::start_with(&db.0, &env).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v1/process-models", replica.base))
        .bearer_auth(token())
        .json(&json!({"key": "tailed", "name": "Tailed"}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);

    let tail = |args: &[&str], with_nats: bool| {
        let mut command = Command::new(BIN);
        command
            .args(["events", "tail"])
            .args(args)
            .env("APP_PROFILE", "test")
            .env("DATABASE_URL", format!("{}/{}", server(), db.0))
            .env("JWT_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if with_nats {
            command.envs(env.iter().copied());
        }
        command.spawn().expect("tail")
    };
    let mut child = tail(
        &["--from", "start", "--format", "json", "--tenant", "acme"],
        true,
    );
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .expect("a line within 20 s")
        .expect("join")
        .expect("read");
    let _ = child.kill();
    let _ = child.wait();
    let envelope: Value = serde_json::from_str(&line).expect("one JSON envelope per line");
    assert_eq!(envelope["eventType"], "ModelCreated");
    assert_eq!(envelope["tenantId"], "acme");
    assert!(envelope["globalPosition"].is_i64());

    let output = tail(&[], false)
        .wait_with_output()
        .expect("tail without nats");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs NATS"));

    if let Ok(client) = async_nats::connect(&nats).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    drop(replica);
}
