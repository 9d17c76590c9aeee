//! The tests embed `../migrations` with `sqlx::migrate!`, which notices edits to known
//! files but not new ones: rebuild when the folder changes.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
