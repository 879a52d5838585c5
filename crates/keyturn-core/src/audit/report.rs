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
/// added columns are fine; `N/A`, `no_information` and `not_supported` mean "missing". Any row
/// that cannot be read is an error (see [`parse_report_rows`] to go on past it).
pub fn parse_report(bytes: &[u8]) -> Result<Vec<ReportRow>, ReportError> {
    let (rows, bad) = parse_report_rows(bytes)?;
    match bad.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

/// A credential report's rows, and each row that cannot be read as its own error: one strange
/// user must not hide every other finding. The report itself (its header) failing is the outer
/// error. IAM allows `,` in user names and the report does not quote them: a row with more fields
/// than the header whose first fields, joined by commas, are the name its ARN ends with is read as
/// that user.
pub fn parse_report_rows(bytes: &[u8]) -> Result<(Vec<ReportRow>, Vec<ReportError>), ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
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
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    let mut raw = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // A broken record (bad quoting, not UTF-8 where CSV needs it) is its own error; a
                // reader that cannot go on past it ends the rows here.
                bad.push(csv_error(&e));
                if bad.len() > 1000 {
                    break;
                }
                continue;
            }
        }
        let line = raw.position().map(|p| p.line()).unwrap_or(0);
        let record = match fit(&raw, headers.len(), user_col, arn_col) {
            Ok(r) => r,
            Err(reason) => {
                bad.push(ReportError::Csv { line, reason });
                continue;
            }
        };
        match read_row(&record, line, user_col, arn_col, &slots) {
            Ok(row) => rows.push(row),
            Err(e) => bad.push(e),
        }
    }
    Ok((rows, bad))
}

/// The columns of one slot: (slot, active, created, last used, region, service).
type SlotColumns = (u8, usize, usize, usize, usize, usize);

/// A record with as many fields as the header: as it is, or with a user name that held commas
/// joined back. The name's commas split the ARN as well (it ends with the name), so a record with
/// `2k` fields too many is read as a name of `k` commas when its ARN, joined back, ends with it.
fn fit(
    raw: &csv::ByteRecord,
    width: usize,
    user_col: usize,
    arn_col: usize,
) -> Result<csv::ByteRecord, String> {
    if raw.len() == width {
        return Ok(raw.clone());
    }
    let extra = raw.len().saturating_sub(width);
    let refuse = || format!("{} fields where the header has {width}", raw.len());
    if raw.len() < width || user_col + 1 != arn_col || !extra.is_multiple_of(2) {
        return Err(refuse());
    }
    let commas = extra / 2;
    let join = |from: usize| {
        raw.iter()
            .skip(from)
            .take(commas + 1)
            .collect::<Vec<_>>()
            .join(&b","[..])
    };
    let (user, arn) = (join(user_col), join(user_col + commas + 1));
    let named =
        arn.len() > user.len() && arn.ends_with(&user) && arn[arn.len() - user.len() - 1] == b'/';
    if !named {
        return Err(format!(
            "{}, and its first fields are not the user its ARN names",
            refuse()
        ));
    }
    let mut fitted = csv::ByteRecord::new();
    for field in raw.iter().take(user_col) {
        fitted.push_field(field);
    }
    fitted.push_field(&user);
    fitted.push_field(&arn);
    for field in raw.iter().skip(user_col + extra + 2) {
        fitted.push_field(field);
    }
    Ok(fitted)
}

/// One row of the report, read by column.
fn read_row(
    record: &csv::ByteRecord,
    line: u64,
    user_col: usize,
    arn_col: usize,
    slots: &[SlotColumns],
) -> Result<ReportRow, ReportError> {
    {
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
        for &(slot, active, rotated, used, region, service) in slots {
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
        Ok(ReportRow {
            user,
            arn: text(arn_col, "arn")?,
            keys,
        })
    }
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

    #[test]
    fn a_user_name_with_a_comma_is_read_and_a_bad_row_is_its_own_error() {
        let keys = "true,2026-01-01T00:00:00+00:00,N/A,N/A,N/A";
        let none = "false,N/A,N/A,N/A,N/A";
        let csv = report(&[
            row("app1", keys, none),
            // IAM allows ',' in a user name and the report does not quote it.
            row("ops,deploy", keys, none),
            // One field too many that the ARN does not explain, and a bad date.
            "weird,arn:aws:iam::123456789012:user/other,extra".to_string()
                + &row("x", keys, none)[1..],
            row("late", "true,yesterday,N/A,N/A,N/A", none),
            row("app2", keys, none),
        ]);
        let (rows, bad) = parse_report_rows(&csv).expect("the header is fine");
        let users: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(users, ["app1", "ops,deploy", "app2"]);
        assert_eq!(rows[1].arn, "arn:aws:iam::123456789012:user/ops,deploy");
        assert_eq!(rows[1].keys.len(), 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].to_string().contains("line 4"), "{}", bad[0]);
        assert!(bad[1].to_string().contains("yesterday"), "{}", bad[1]);
        assert!(
            parse_report(&csv).is_err(),
            "the strict form still refuses it"
        );
    }
}
