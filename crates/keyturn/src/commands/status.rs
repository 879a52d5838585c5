//! `keyturn status`: the core's report (`keyturn_core::status`) for one secret, as JSON or text.

use crate::setup::AwsRotator;

use crate::args::{Output, StatusArgs};
use crate::render::{print_json, status};

pub async fn run(r: &AwsRotator, a: StatusArgs, output: Output) -> anyhow::Result<bool> {
    let report = r.status(&a.secret, a.all_versions).await?;
    match output {
        Output::Json => print_json(&report),
        // CSV was refused before the run (Command::output).
        Output::Table | Output::Csv => status::print(&report),
    }
    Ok(report.problems.is_empty())
}
