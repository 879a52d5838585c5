//! `keyturn enroll`: a new secret holding a fresh key, or `--adopt` of a hand-made one. The work
//! is keyturn-core's (`enroll`); this turns the flags into its requests.

use crate::setup::AwsRotator;
use anyhow::bail;
use keyturn_core::enroll::{AdoptRequest, EnrollReport, EnrollRequest, Schedule};

use crate::args::{EnrollArgs, Output};
use crate::render::{print_enrolled, print_json};

/// Enrolls or adopts, and prints what was done.
pub async fn run(r: &AwsRotator, a: &EnrollArgs, output: Output) -> anyhow::Result<bool> {
    let out = enroll(r, a).await?;
    match output {
        Output::Json => print_json(&out),
        // CSV was refused before the run (Command::output).
        Output::Table | Output::Csv => print_enrolled(&out),
    }
    Ok(true)
}

async fn enroll(r: &AwsRotator, a: &EnrollArgs) -> anyhow::Result<EnrollReport> {
    let schedule = a.rotation_lambda.as_ref().map(|f| Schedule {
        function_arn: f.clone(),
        days: a.rotate_every,
    });
    // `enroll --user USER` is `enroll USER`.
    let user = a.user.as_ref().or(a.adopt_user.as_ref());
    let report = match (&a.adopt, user) {
        (Some(secret), _) => {
            r.adopt(&AdoptRequest {
                secret: secret.clone(),
                user: a.adopt_user.clone(),
                extra_tags: a.tags.clone(),
                schedule,
            })
            .await?
        }
        (None, Some(user)) => {
            r.enroll(&EnrollRequest {
                user: user.clone(),
                secret_name: a
                    .secret_name
                    .clone()
                    .unwrap_or_else(|| format!("{}{user}", r.settings().scope.prefix())),
                extra_tags: a.tags.clone(),
                schedule,
            })
            .await?
        }
        (None, None) => bail!("name a USER to enroll, or --adopt SECRET"),
    };
    Ok(report)
}
