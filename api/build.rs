//! Records the git commit and build time for `/actuator/info` (absent outside a checkout).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=FLOWABLE_UI_GIT_COMMIT={commit}");
    }
    if let Ok(time) = std::env::var("SOURCE_DATE_EPOCH").or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
    }) {
        println!("cargo:rustc-env=FLOWABLE_UI_BUILD_TIME={time}");
    }
    println!("cargo:rerun-if-changed=../.git/logs/HEAD");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}
