//! One rendering path for the list commands: typed rows (`Serialize`) printed as an aligned table
//! (comfy-table), pretty JSON, or CSV with neutralised cells; and `bulk`, which runs the rows'
//! work with bounded concurrency behind an indicatif progress bar (drawn only on a terminal).

pub mod audit;
pub mod deliver;
pub mod notify;
pub mod org;
pub mod rotate;
pub mod status;
pub mod sweep;

use std::sync::Arc;

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;
use serde_json::Value;

use crate::args::Output;
use crate::safe::term;

/// A command's row in the account it came from: `account` and `accountName` before the row's
/// own fields in JSON and CSV.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InAccount<R> {
    pub account: String,
    pub account_name: Option<String>,
    #[serde(flatten)]
    pub row: R,
}

/// A row a command prints for an account it could not work in.
pub trait AccountFailure {
    fn account_failed(error: String) -> Self;
    /// The row for a secret (or, with `None`, a whole account) that a signal kept from starting.
    fn not_started(secret: Option<String>) -> Self
    where
        Self: Sized,
    {
        let what = secret.unwrap_or_else(|| "the account".into());
        Self::account_failed(format!(
            "{what}: not started: the run was interrupted first; nothing was changed"
        ))
    }
}

/// A row of a list command: its JSON shape comes from `Serialize`; its table and CSV columns
/// from `COLUMNS` (heading, JSON field).
pub trait Row: Serialize {
    /// The table's columns: heading and JSON field.
    const COLUMNS: &'static [(&'static str, &'static str)];
    /// Every JSON field, in order: the CSV's header (after the account's two). One list for both
    /// formats, checked against what `Serialize` writes (`fields_match_json`).
    const FIELDS: &'static [&'static str];
    /// Whether the row is a failure (counted in the table's last line, and in the exit code).
    fn failed(&self) -> bool;
}

/// Prints rows as `output` asks. JSON is the rows' array, pretty-printed like every JSON keyturn
/// prints; CSV has one header line of the JSON field names, `account` and `accountName` first;
/// the table groups the rows by account (they come in account order), naming each account once.
pub fn print_rows<R: Row>(rows: &[InAccount<R>], output: Output) {
    let values: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    match output {
        Output::Json => print_json(&values),
        Output::Csv => {
            let fields: Vec<&str> = ACCOUNT_FIELDS
                .into_iter()
                .chain(R::FIELDS.iter().copied())
                .collect();
            print_csv(rows, &fields);
        }
        Output::Table => {
            // A column no row fills (no errors, nothing deleted) is left out.
            let shown: Vec<_> = R::COLUMNS
                .iter()
                .filter(|(_, f)| values.iter().any(|v| !v[*f].is_null()))
                .collect();
            let mut table =
                plain_table(std::iter::once("ACCOUNT").chain(shown.iter().map(|(h, _)| *h)));
            let mut shortened = false;
            for (v, group) in values.iter().zip(account_groups(rows)) {
                table.add_row(
                    std::iter::once(group.map(|g| term(&g).into_owned()).unwrap_or_default())
                        .chain(shown.iter().map(|(_, f)| {
                            let cell = text(&v[*f]);
                            if *f != "error" {
                                return term(&cell).into_owned();
                            }
                            let short = brief(&cell, v["secret"].as_str());
                            shortened |= short.len() < cell.len();
                            term(&short).into_owned()
                        })),
                );
            }
            if !rows.is_empty() {
                print_table(&table);
            }
            if shortened {
                println!("errors are shortened to their cause: --output json gives each in full, with what to do next");
            }
            let failed = rows.iter().filter(|r| r.row.failed()).count();
            let accounts = account_groups(rows).flatten().count();
            if accounts > 1 {
                println!(
                    "{} row(s) in {accounts} accounts, {failed} failed",
                    rows.len()
                );
            } else {
                println!("{} secret(s), {failed} failed", rows.len());
            }
        }
    }
}

/// An error for a table cell: its cause, one clause, without the secret the row already names
/// (keyturn's errors read "secret S: cause; what to do").
pub fn brief(error: &str, secret: Option<&str>) -> String {
    let rest = secret
        .and_then(|s| error.strip_prefix(&format!("secret {s}: ")))
        .unwrap_or(error);
    match rest.split_once("; ") {
        Some((cause, _)) => cause.to_string(),
        None => rest.to_string(),
    }
}

/// What `enroll` did, in one line.
pub fn print_enrolled(out: &keyturn_core::enroll::EnrollReport) {
    println!(
        "{} {} for user {} ({}), {}",
        out.outcome.as_str(),
        term(&out.secret),
        term(&out.user),
        match &out.key_id {
            Some(k) => format!("key {}", term(k)),
            None => "no key yet: the first rotation makes one".into(),
        },
        if out.scheduled {
            "Secrets Manager rotates it on schedule"
        } else {
            "not scheduled: rotate it with keyturn rotate (from cron or CI), or enroll with --rotation-lambda ARN to have Secrets Manager call the rotation function"
        }
    );
}

/// `credential-process`'s answer. The one place keyturn prints a secret: the AWS SDKs read it on
/// standard output.
pub fn print_credentials(answer: &Value) {
    println!("{answer}");
}

/// Whether `row` serializes to exactly `R::FIELDS`, in that order (for the rows' tests).
#[cfg(test)]
pub fn fields_match_json<R: Row>(row: &R) -> Result<(), String> {
    let v = serde_json::to_value(row).map_err(|e| e.to_string())?;
    let keys: Vec<&str> = v
        .as_object()
        .ok_or("not an object")?
        .keys()
        .map(String::as_str)
        .collect();
    if keys == R::FIELDS {
        Ok(())
    } else {
        Err(format!("JSON {keys:?} but FIELDS {:?}", R::FIELDS))
    }
}

/// The account columns every list command's CSV starts with.
pub const ACCOUNT_FIELDS: [&str; 2] = ["account", "accountName"];

/// For each row, its account's label where a group of rows of one account starts, else `None`.
pub fn account_groups<R>(rows: &[InAccount<R>]) -> impl Iterator<Item = Option<String>> + '_ {
    rows.iter().enumerate().map(move |(i, r)| {
        let starts = i == 0 || rows[i - 1].account != r.account;
        starts.then(|| match &r.account_name {
            Some(n) => format!("{} ({n})", r.account),
            None => r.account.clone(),
        })
    })
}

/// Rows as CSV on standard output (see `write_csv`).
pub fn print_csv<R: Serialize>(rows: &[R], fields: &[&str]) {
    if let Err(e) = write_csv(std::io::stdout().lock(), rows, fields) {
        eprintln!("keyturn: the output could not be written as CSV: {e}");
    }
}

/// Rows as CSV: a header line of the JSON field names, then each row's fields (absent ones empty,
/// none a spreadsheet formula), quoted by the csv writer where a comma, quote or line break needs it.
pub fn write_csv<R: Serialize>(
    out: impl std::io::Write,
    rows: &[R],
    fields: &[&str],
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(fields)?;
    for row in rows {
        let v = serde_json::to_value(row).unwrap_or(Value::Null);
        w.write_record(fields.iter().map(|f| csv_cell(&v[*f])))?;
    }
    w.flush()?;
    Ok(())
}

/// A table's lines without the padding after the last column.
pub fn print_table(table: &Table) {
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// Every JSON document keyturn prints, in one style.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("keyturn: the output could not be written as JSON: {e}"),
    }
}

/// A borderless table with aligned columns, never wrapped (a line stays whole for grep).
pub fn plain_table<'a>(headings: impl IntoIterator<Item = &'a str>) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headings);
    // Two spaces between columns, none before the first: lines start at the margin.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// A JSON value as a table or CSV cell: strings as they are, absent as `-` (tables) or empty
/// (CSV).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// One CSV field's text: absent is empty, and no field is a formula (`safe::not_a_formula`).
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => crate::safe::not_a_formula(&text(other)).into_owned(),
    }
}

/// Runs `work` over `items` with at most `concurrency` at once, with a progress bar on standard
/// error when it is a terminal (indicatif draws nothing otherwise). Every item runs, whatever the
/// others do, until a signal stops the run (`interrupt`): an item not started by then comes back
/// as `Err(item)`, untouched. Results come back in the items' order. No bar when `progress` is
/// false (under a bar over accounts).
/// A progress bar on standard error over `total` items, drawn when `show` and there is more than
/// one (indicatif draws nothing when standard error is not a terminal).
pub fn progress_bar(total: usize, show: bool) -> indicatif::ProgressBar {
    let bar = if total > 1 && show {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("#> "));
    }
    bar
}

/// Held while one item runs: the bar advances when it is done.
pub struct Tick(pub indicatif::ProgressBar);

impl Drop for Tick {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}

pub async fn bulk<I, T, F, Fut>(
    items: Vec<I>,
    concurrency: u16,
    progress: bool,
    work: F,
) -> Vec<Result<T, I>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let total = items.len();
    let bar = progress_bar(total, progress);
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.into()));
    let work = Arc::new(work);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let (gate, work, bar) = (gate.clone(), work.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            if crate::interrupt::stopping() {
                return (i, Err(item));
            }
            let _tick = Tick(bar);
            (i, Ok(work(item).await))
        });
    }
    let mut results: Vec<Option<Result<T, I>>> = (0..total).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, v)) => results[i] = Some(v),
            Err(e) => tracing::error!(error = %e, "a task panicked"),
        }
    }
    bar.finish();
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Cell {
        a: Option<String>,
        b: Option<i64>,
    }

    #[test]
    fn a_table_shows_an_error_s_cause_without_the_secret_it_names() {
        let e = "secret keyturn/a: another rotation of user a's key started at the same moment: IAM refused a third key; nothing was changed: let that run finish";
        assert_eq!(
            brief(e, Some("keyturn/a")),
            "another rotation of user a's key started at the same moment: IAM refused a third key"
        );
        assert_eq!(brief("no next step", None), "no next step");
        assert_eq!(
            brief(e, Some("keyturn/b")).split_once(':').map(|p| p.0),
            Some("secret keyturn/a")
        );
    }

    #[test]
    fn csv_is_quoted_by_the_writer_and_never_a_formula() {
        let rows = [
            Cell {
                a: Some("a,b".into()),
                b: Some(-2),
            },
            Cell {
                a: Some("say \"hi\"\nnext".into()),
                b: None,
            },
            Cell {
                a: Some("=HYPERLINK(\"x\")".into()),
                b: Some(3),
            },
        ];
        let mut out = Vec::new();
        write_csv(&mut out, &rows, &["a", "b"]).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "a,b\n\"a,b\",'-2\n\"say \"\"hi\"\"\nnext\",\n\"'=HYPERLINK(\"\"x\"\")\",3\n"
        );
    }
}
