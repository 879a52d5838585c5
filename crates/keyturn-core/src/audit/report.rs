//! The IAM credential report: parsed by column name, never panicking, naming the line of any fault.

use time::OffsetDateTime;

/// One access key slot of a credential report row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    /// 1 or 2: the report's `access_key_1_*` / `access_key_2_*` columns.
    pub slot: u8,
    pub active: bool,
    /// When the key was created (the report calls it "last rotated").
    pub created: Option<OffsetDateTime>,
    pub last_used: Option<OffsetDateTime>,
    pub last_used_region: Option<String>,
    pub last_used_service: Option<String>,
}

/// One user of the credential report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub user: String,
    pub arn: String,
    pub keys: Vec<ReportKey>,
}

/// Why a credential report could not be read. Never panics; names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the credential report is empty")]
    Empty,
    #[error("the credential report has no column {0:?}; is it an IAM credential report?")]
    MissingColumn(String),
    #[error("the credential report is not valid CSV at line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("line {line} of the credential report: {column} is {value:?}, not {expected}")]
    BadValue {
        line: u64,
        column: String,
        value: String,
        expected: &'static str,
    },
}

const MISSING: [&str; 4] = ["N/A", "no_information", "not_supported", ""];

/// Parses a credential report (CSV with a header row). Columns are found by name, so reordered or
/// added columns are fine; `N/A`, `no_information` and `not_supported` mean "missing".
pub fn parse_report(bytes: &[u8]) -> Result<Vec<ReportRow>, ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let headers = reader.byte_headers().map_err(|e| csv_error(&e))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(ReportError::Empty);
    }
    let column = |name: &str| -> Result<usize, ReportError> {
        headers
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| ReportError::MissingColumn(name.to_string()))
    };
    let user_col = column("user")?;
    let arn_col = column("arn")?;
    let mut slots = Vec::new();
    for slot in 1..=2u8 {
        let c = |what: &str| column(&format!("access_key_{slot}_{what}"));
        slots.push((
            slot,
            c("active")?,
            c("last_rotated")?,
            c("last_used_date")?,
            c("last_used_region")?,
            c("last_used_service")?,
        ));
    }
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let text = |i: usize, name: &str| -> Result<String, ReportError> {
            let raw = record.get(i).unwrap_or_default();
            std::str::from_utf8(raw)
                .map(str::to_string)
                .map_err(|_| ReportError::BadValue {
                    line,
                    column: name.to_string(),
                    value: String::from_utf8_lossy(raw).into_owned(),
                    expected: "UTF-8 text",
                })
        };
        let optional = |i: usize, name: &str| -> Result<Option<String>, ReportError> {
            let v = text(i, name)?;
            Ok((!MISSING.contains(&v.trim())).then(|| v.trim().to_string()))
        };
        let date = |i: usize, name: &str| -> Result<Option<OffsetDateTime>, ReportError> {
            optional(i, name)?
                .map(|v| {
                    OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| ReportError::BadValue {
                            line,
                            column: name.to_string(),
                            value: v.clone(),
                            expected: "an ISO 8601 date",
                        })
                })
                .transpose()
        };
        let user = text(user_col, "user")?;
        if user.is_empty() {
            return Err(ReportError::BadValue {
                line,
                column: "user".into(),
                value: user,
                expected: "a user name",
            });
        }
        let mut keys = Vec::new();
        for &(slot, active, rotated, used, region, service) in &slots {
            let active_text = text(active, "access_key_active")?;
            let is_active = match active_text.trim() {
                "true" | "TRUE" | "True" => true,
                "false" | "FALSE" | "False" => false,
                other => {
                    return Err(ReportError::BadValue {
                        line,
                        column: format!("access_key_{slot}_active"),
                        value: other.to_string(),
                        expected: "true or false",
                    })
                }
            };
            let created = date(rotated, "access_key_last_rotated")?;
            if !is_active && created.is_none() {
                continue; // no key in this slot
            }
            keys.push(ReportKey {
                slot,
                active: is_active,
                created,
                last_used: date(used, "access_key_last_used_date")?,
                last_used_region: optional(region, "access_key_last_used_region")?,
                last_used_service: optional(service, "access_key_last_used_service")?,
            });
        }
        rows.push(ReportRow {
            user,
            arn: text(arn_col, "arn")?,
            keys,
        });
    }
    Ok(rows)
}

fn csv_error(e: &csv::Error) -> ReportError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_string(),
        _ => e.to_string(),
    };
    ReportError::Csv { line, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{report, row, HEADER};
    use time::macros::datetime;

    #[test]
    fn parses_keys_and_the_missing_value_forms() {
        let rows = parse_report(&report(&[
            row(
                "root_like",
                "false,N/A,N/A,N/A,N/A",
                "false,N/A,N/A,N/A,N/A",
            ),
            row(
                "app1",
                "true,2026-01-01T00:00:00+00:00,2026-02-01T10:00:00+00:00,eu-west-1,s3",
                "true,2026-03-01T00:00:00+00:00,no_information,not_supported,not_supported",
            ),
            row(
                "off",
                "false,2026-01-01T00:00:00+00:00,N/A,N/A,N/A",
                "false,N/A,N/A,N/A,N/A",
            ),
        ]))
        .expect("valid report");
        assert_eq!(rows.len(), 3);
        assert!(rows[0].keys.is_empty(), "no keys");
        let k = &rows[1].keys;
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].last_used_service.as_deref(), Some("s3"));
        assert_eq!(k[0].last_used, Some(datetime!(2026-02-01 10:00 UTC)));
        assert_eq!(
            (k[1].last_used, k[1].last_used_region.clone()),
            (None, None)
        );
        assert!(
            !rows[2].keys[0].active,
            "an inactive key is kept but marked"
        );
    }

    #[test]
    fn malformed_reports_are_clear_errors() {
        let short = format!("{HEADER}\napp1,arn,2026\n");
        assert!(matches!(
            parse_report(short.as_bytes()),
            Err(ReportError::Csv { line: 2, .. })
        ));
        let bad_date = report(&[row(
            "app1",
            "true,yesterday,N/A,N/A,N/A",
            "false,N/A,N/A,N/A,N/A",
        )]);
        let e = parse_report(&bad_date).expect_err("bad date");
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("yesterday"),
            "{e}"
        );
        let bad_bool = report(&[row(
            "app1",
            "maybe,N/A,N/A,N/A,N/A",
            "false,N/A,N/A,N/A,N/A",
        )]);
        assert!(parse_report(&bad_bool)
            .expect_err("bad bool")
            .to_string()
            .contains("true or false"));
        assert_eq!(parse_report(b""), Err(ReportError::Empty));
        assert_eq!(
            parse_report(b"user,arn\nx,y\n"),
            Err(ReportError::MissingColumn("access_key_1_active".into()))
        );
        let mut binary = report(&[row("app1", "true,N/A,N/A,N/A,N/A", "false,N/A,N/A,N/A,N/A")]);
        binary.extend_from_slice(b"\xff\xfe,\xff\n");
        assert!(parse_report(&binary).is_err());
        let no_user = report(&[row("", "true,N/A,N/A,N/A,N/A", "false,N/A,N/A,N/A,N/A")]);
        assert!(parse_report(&no_user).is_err());
    }
}
