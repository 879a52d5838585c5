// Stamps the build with its git commit and build date, for `keyturn --version` and the rotation
// function's start-up line (the function's build script includes this file).
//
// The commit is `KEYTURN_COMMIT` when set (a release workflow's checkout), else git's HEAD, else
// the commit cargo recorded when the crate was packaged (`.cargo_vcs_info.json`, a crates.io
// install), else `unknown`. The date is `SOURCE_DATE_EPOCH`'s day when set (reproducible builds),
// else today's (UTC).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KEYTURN_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = std::env::var("KEYTURN_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_head)
        .or_else(packaged_commit)
        .unwrap_or_else(|| "unknown".to_string());
    let short: String = commit.trim().chars().take(12).collect();
    println!("cargo:rustc-env=KEYTURN_COMMIT={short}");
    println!("cargo:rustc-env=KEYTURN_BUILD_DATE={}", build_date());
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// HEAD's commit, and the files whose change means a new commit (only those that exist: cargo
/// reruns a build script on every build when a file it watches is missing).
fn git_head() -> Option<String> {
    let commit = git(&["rev-parse", "HEAD"])?;
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.iter().filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    Some(commit)
}

/// The commit `cargo package` wrote beside the manifest: `{"git": {"sha1": "..."}, ...}`.
fn packaged_commit() -> Option<String> {
    let text = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let start = text.find("\"sha1\"")? + "\"sha1\"".len();
    let rest = text[start..].split('"').nth(1)?;
    rest.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| rest.to_string())
}

fn build_date() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let d = now.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
