//! The server under test: a child process on a free loopback port, its readiness, resident
//! memory and CPU time (read from `/proc/<pid>`), and its shutdown.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A running `flowable-ui serve`.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub port: u16,
    pub log: PathBuf,
    started: Instant,
}

/// How to start the server.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    pub jwt_secret: &'a str,
    pub log: PathBuf,
    /// Extra `APP_<SECTION>__<KEY>` settings.
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Starts the server on a free port (`test` profile: it migrates the database on start).
    pub fn start(launch: &Launch<'_>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = File::create(&launch.log)
            .with_context(|| format!("cannot create {}", launch.log.display()))?;
        let mut command = Command::new(launch.binary);
        command
            .arg("serve")
            .env_remove("APP_CONFIG_FILE")
            .env_remove("RUST_LOG")
            .env("APP_PROFILE", "test")
            .env("DATABASE_URL", launch.database_url)
            .env("JWT_SECRET", launch.jwt_secret)
            .env("SERVER_PORT", port.to_string())
            .env("APP_SERVER__HOST", "127.0.0.1")
            .env("APP_LOG__LEVEL", "warn")
            // The benchmark measures the service, not its abuse limits.
            .env("APP_LIMITS__ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command.spawn().with_context(|| {
            format!(
                "cannot start the server {} (build it: cargo build --release -p api)",
                launch.binary.display()
            )
        })?;
        Ok(Self {
            pid: child.id(),
            child,
            port,
            log: launch.log.clone(),
            started,
        })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `/actuator/health/readiness` until it answers 200; returns the time from process
    /// start to that answer.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let url = format!("{}/actuator/health/readiness", self.base());
        let deadline = self.started + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during start-up ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            let ready = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(self.started.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "the server was not ready within {timeout:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Resident memory now and its high-water mark, in KiB.
    pub fn memory(&self) -> Memory {
        memory(self.pid)
    }

    /// Resets the peak resident memory (`VmHWM`) so the next reading is the peak from now on;
    /// `false` when the kernel refused (then only the sampled peak is known).
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `VmRSS` and `VmHWM` of a process, KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// utime + stime from `/proc/<pid>/stat` (clock ticks of 10 ms, as on every Linux/x86-64).
pub fn cpu_time(pid: u32) -> Duration {
    proc_cpu(pid).map_or(Duration::ZERO, |c| c.own)
}

/// A process's CPU time, that of its reaped children, and its parent.
pub struct ProcCpu {
    pub parent: u32,
    pub own: Duration,
    pub children: Duration,
}

pub fn proc_cpu(pid: u32) -> Option<ProcCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may contain spaces): state, ppid, …; utime,
    // stime, cutime and cstime are fields 14–17 overall, i.e. 11–14 after the name.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcCpu {
        parent: get(1) as u32,
        own: Duration::from_millis((get(11) + get(12)) * 10),
        children: Duration::from_millis((get(13) + get(14)) * 10),
    })
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("no free port")?;
    Ok(listener.local_addr()?.port())
}
