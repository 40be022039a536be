//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds the `migrations/` folders
//! at compile time, and cargo does not watch them otherwise (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
