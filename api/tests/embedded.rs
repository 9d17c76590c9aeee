//! The embedded default end to end, as a new user meets it: the binary with nothing
//! configured (no DATABASE_URL, NATS_URL or JWT_SECRET) serves the API on an SQLite file,
//! prints a working token, keeps its data across restarts, refuses a second process on the
//! same file, and its command line works on the file once the server has stopped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowable-ui");

/// A scratch working directory, removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("fui-embedded-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("workdir");
        Self(dir)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `flowable-ui` in `dir` with an empty environment but for the port: the dev profile.
fn command(dir: &Path, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SERVER_PORT", port.to_string())
        .env("RUST_LOG", "warn");
    command
}

struct Server {
    child: Child,
    port: u16,
    token: String,
}

impl Server {
    /// Starts the server and reads the token it prints.
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut child = command(dir, port, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut token = None;
        let mut printed = Vec::new();
        while let Some(Ok(line)) = lines.next() {
            printed.push(line.clone());
            if line.starts_with("development token") {
                token = lines.next().and_then(Result::ok);
                break;
            }
        }
        let token = token.unwrap_or_else(|| panic!("no token printed: {printed:?}"));
        assert!(
            printed
                .iter()
                .any(|l| l.contains("flowable-ui.db (embedded SQLite")),
            "says where its data lives: {printed:?}"
        );
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port, token }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, then wait for the graceful exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "graceful exit: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_binary_runs_on_an_sqlite_file_with_nothing_configured() {
    let dir = Workdir::new();
    let client = reqwest::Client::new();

    let server = Server::start(&dir.0);
    let created: Value = {
        let response = client
            .post(server.url("/api/v1/process-models"))
            .bearer_auth(&server.token)
            .json(&json!({"key": "order", "name": "Order"}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        response.json().await.expect("json")
    };
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(dir.0.join("data/flowable-ui.db").exists());

    // A second process on the same file is refused, naming the file.
    let second = command(&dir.0, free_port(), &[]).output().expect("second");
    assert!(!second.status.success());
    assert!(
        text(&second).contains("in use by another flowable-ui process"),
        "{}",
        text(&second)
    );
    let first_token = server.token.clone();
    server.stop();

    // The command line works on the file once the server is gone.
    let status = command(&dir.0, 0, &["projections", "status"])
        .output()
        .expect("status");
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("process_models"),
        "{}",
        text(&status)
    );
    let verify = command(&dir.0, 0, &["audit", "verify"])
        .output()
        .expect("verify");
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains("intact"), "{}", text(&verify));

    // Restarted, it serves what it stored, and the old token still verifies (the
    // development secret is kept beside the data).
    let restarted = Server::start(&dir.0);
    let response = client
        .get(restarted.url(&format!("/api/v1/process-models/{id}")))
        .bearer_auth(&first_token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["key"], "order");
    let tail = command(&dir.0, 0, &["events", "tail"])
        .output()
        .expect("tail");
    assert!(!tail.status.success());
    assert!(text(&tail).contains("needs NATS"), "{}", text(&tail));
    restarted.stop();
}
