//! Measures parsing and joining credential reports of generated users (a benchmark, not a test):
//! `cargo run --release -p keyturn-core --example audit_scale -- 1000 10000 100000`. The last column
//! is the process's peak RSS so far: run one size per process to see each size's own peak.

use std::time::Instant;

use keyturn_core::audit::{audit, parse_report, AuditPolicy, ManagedKey};
use time::macros::datetime;
use time::Duration;

const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n";

/// A report of `n` users: each has an active key, every other one a second key, every third one
/// a key never used; half the users' first keys are held by a managed secret.
fn generate(n: usize) -> (Vec<u8>, Vec<ManagedKey>) {
    let mut csv = String::with_capacity(n * 330 + HEADER.len());
    csv.push_str(HEADER);
    let mut managed = Vec::new();
    for i in 0..n {
        let day = 1 + i % 28;
        let used = if i % 3 == 0 {
            "N/A,N/A,N/A".to_string()
        } else {
            format!("2026-03-{day:02}T10:00:00+00:00,us-east-1,s3")
        };
        let second = if i % 2 == 0 {
            format!("true,2026-02-{day:02}T00:00:00+00:00,N/A,N/A,N/A")
        } else {
            "false,N/A,N/A,N/A,N/A".to_string()
        };
        csv.push_str(&format!(
            "user{i},arn:aws:iam::123456789012:user/user{i},2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2026-01-{day:02}T00:00:00+00:00,{used},{second},false,N/A,false,N/A\n"
        ));
        if i % 2 == 1 {
            managed.push(ManagedKey {
                secret: format!("keyturn/user{i}"),
                label: "AWSCURRENT".into(),
                user: format!("user{i}"),
                key_id: format!("AKIA{i:016}"),
                slot: Some(1),
                created: Some(datetime!(2026-01-01 00:00 UTC) + Duration::days((day - 1) as i64)),
                rotation_enabled: true,
                next_rotation: None,
                rotation_days: 30,
                cutover: None,
                grace: None,
                exists: true,
                user_gone: false,
            });
        }
    }
    (csv.into_bytes(), managed)
}

/// This process's peak resident set so far (Linux: VmHWM), for one size per process.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    let policy = AuditPolicy {
        as_of: datetime!(2026-04-01 00:00 UTC),
        max_age: Duration::days(90),
        grace: Duration::days(7),
    };
    println!("users,report_bytes,parse_ms,join_ms,total_ms,keys,ns_per_user,peak_rss_kib");
    for n in sizes {
        let (csv, managed) = generate(n);
        // Best of 5, to keep scheduler noise out.
        let mut best = (f64::MAX, f64::MAX, 0usize);
        for _ in 0..5 {
            let t0 = Instant::now();
            let rows = parse_report(&csv).expect("generated report parses");
            let t1 = Instant::now();
            let entries = audit(&rows, &managed, &policy);
            let t2 = Instant::now();
            let (p, j) = ((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3);
            if p + j < best.0 + best.1 {
                best = (p, j, entries.len());
            }
        }
        let total = best.0 + best.1;
        println!(
            "{n},{},{:.2},{:.2},{:.2},{},{:.0},{}",
            csv.len(),
            best.0,
            best.1,
            total,
            best.2,
            total * 1e6 / n.max(1) as f64,
            peak_rss_kib().map_or_else(|| "n/a".to_string(), |k| k.to_string())
        );
    }
}
