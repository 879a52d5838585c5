//! `keyturn status`: one secret's versions, its user's keys, the cut-over, whether consumers
//! switched, the sinks and what is wrong, as one typed report. Its JSON is the report's
//! serialization; its text is the CLI's rendering of the same report (the `#[serde(skip)]`
//! fields keep the typed facts the text needs).

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::RotationSettings;
use crate::error::{rfc3339, RotationError};
use crate::ports::KeyUse;
use crate::ports::Ports;
use crate::rotation::Rotator;
use crate::rules::{self, SwitchEvidence};
use crate::state::{Holding, LastUse, Needs, SecretState};
use crate::tags;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub secret: String,
    pub user: String,
    pub rotation_enabled: bool,
    /// When the key last changed: Secrets Manager's LastRotatedDate (its own rotations), else
    /// keyturn's cut-over record; `lastRotatedBy` says which (`secretsmanager`, `keyturn`).
    pub last_rotated: Option<String>,
    pub last_rotated_by: Option<&'static str>,
    pub next_rotation: Option<String>,
    pub cutover: Option<String>,
    /// The versions with a staging label (every version with --all-versions).
    pub versions: Vec<VersionRow>,
    /// How many older versions, holding no label, are not listed.
    pub versions_not_shown: usize,
    pub keys: Vec<KeyRow>,
    /// After a rotation: whether consumers moved to the new key.
    pub switch: Option<SwitchRow>,
    /// Until when the previous key counts as possibly in use whatever IAM shows (its last-used
    /// record lags: KEYTURN_LAST_USED_SETTLE_SECONDS); absent once the window has passed.
    pub previous_settling_until: Option<String>,
    /// Where a rotation delivers the key (`keyturn:sink:NAME` tags); a tag that does not parse or
    /// points where this configuration does not allow is a problem instead.
    pub sinks: Vec<SinkRow>,
    /// The consumers a rotation restarts (`keyturn:restart:NAME` tags), each with whether it has
    /// completed a restart since the cut-over (its service's own rollout record).
    pub restarts: Vec<RestartRow>,
    pub problems: Vec<String>,
    /// The typed facts behind the strings above, for the text.
    #[serde(skip)]
    pub facts: StatusFacts,
}

/// What the text shows beyond the JSON's strings: times to the second, last uses in words.
#[derive(Debug, Default)]
pub struct StatusFacts {
    pub last_rotated: Option<OffsetDateTime>,
    pub next_rotation: Option<OffsetDateTime>,
    pub previous_settling_until: Option<OffsetDateTime>,
    pub switch: Option<SwitchEvidence>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkRow {
    pub name: String,
    pub kind: &'static str,
    pub spec: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartRow {
    pub name: String,
    pub kind: &'static str,
    pub spec: String,
    /// needed, running, done, failed, unknown (`rules::RestartProgress`).
    pub progress: &'static str,
    pub detail: String,
}

/// The switch evidence (`rules::switch_evidence`): the current key used since the cut-over, and
/// when and where the previous key was last used.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchRow {
    pub current_key_id: String,
    pub current_used_since_cutover: bool,
    pub current_last_used: Option<LastUsed>,
    pub previous_key_id: Option<String>,
    pub previous_last_used: Option<LastUsed>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRow {
    pub version_id: String,
    pub labels: Vec<String>,
    pub key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRow {
    pub key_id: String,
    pub status: &'static str,
    pub created: String,
    pub last_used: Option<LastUsed>,
    pub held_by: Vec<String>,
    #[serde(skip)]
    pub created_at: OffsetDateTime,
    #[serde(skip)]
    pub last_use: Option<KeyUse>,
}

/// GetAccessKeyLastUsed's answer: `at` is absent for a key never used.
#[derive(Debug, Serialize)]
pub struct LastUsed {
    pub at: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
}

impl From<&KeyUse> for LastUsed {
    fn from(u: &KeyUse) -> Self {
        LastUsed {
            at: u.last_used.map(rfc3339),
            service: u.service.clone(),
            region: u.region.clone(),
        }
    }
}

impl<P: Ports> Rotator<P> {
    /// Reads everything `status` shows (every version, every key's last use, the other secrets of
    /// the user, the sinks other secrets declare) and builds the report.
    pub async fn status(
        &self,
        secret: &str,
        all_versions: bool,
    ) -> Result<StatusReport, RotationError> {
        let info = self.describe(secret).await?;
        let needs = Needs {
            all_versions: true,
            last_use: LastUse::Every,
            who_else: true,
            tolerate_bad_values: true,
        };
        let mut read = self.read_state(info, None, needs).await?;
        // A tag the deployment refuses is a problem the report names (from the rules again).
        if let Ok(targets) = rules::restarts(&read.state.info, &self.settings().restarts) {
            read.state.restarts = self.restart_facts(&targets).await;
        }
        let state = &read.state;
        // A destination another managed secret delivers to too: a rotation would refuse it.
        let ours = rules::sinks(&state.info, &self.settings().sinks).unwrap_or_default();
        let others = self.other_sinks(&state.info, &ours).await?;
        let shared = rules::check_unshared(&state.info.name, &ours, &others)
            .err()
            .map(|e| e.to_string());
        Ok(report(state, self.settings(), shared, all_versions))
    }
}

/// When the key last changed, and by whom: Secrets Manager's LastRotatedDate is set by its own
/// rotations only; after a `keyturn rotate` the cut-over record says when.
fn last_rotation(state: &SecretState) -> Option<(OffsetDateTime, &'static str)> {
    match (
        state.info.last_rotated,
        rules::recorded_cutover(&state.info, state.now),
    ) {
        (Some(t), _) => Some((t, "secretsmanager")),
        (None, Some(c)) => Some((c, "keyturn")),
        (None, None) => None,
    }
}

/// Until when the previous key counts as possibly in use (the settle window), if it still does.
fn previous_settling(state: &SecretState) -> Option<OffsetDateTime> {
    state
        .key_of(tags::AWSPREVIOUS)
        .filter(|p| Some(*p) != state.current_key())
        .and_then(|_| rules::retire::settling(state, &rules::records::cutover(state)))
}

/// The report over the facts: pure.
pub fn report(
    state: &SecretState,
    settings: &RotationSettings,
    shared: Option<String>,
    all_versions: bool,
) -> StatusReport {
    let info = &state.info;
    let last = last_rotation(state);
    let shown = |h: &&Holding| all_versions || !h.labels.is_empty();
    let mut problems = rules::problems(state);
    problems.extend(shared);
    let sinks = match rules::sinks(info, &settings.sinks) {
        Ok(found) => found
            .into_iter()
            .map(|s| SinkRow {
                kind: s.kind_name(),
                name: s.name,
                spec: s.spec,
            })
            .collect(),
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    if let Err(e) = rules::restarts(info, &settings.restarts) {
        problems.push(e.to_string());
    }
    if let Err(why) = rules::notices::owner(info) {
        problems.push(format!("{why}: no notice is sent; fix or remove the tag"));
    }
    let cut = rules::records::cutover(state);
    let restarts = state
        .restarts
        .iter()
        .map(|f| {
            let progress = rules::restarts::progress(&f.rollout, cut.latest);
            RestartRow {
                name: f.target.name.clone(),
                kind: f.target.kind_name(),
                spec: f.target.spec.clone(),
                progress: progress.as_str(),
                detail: progress.describe(),
            }
        })
        .collect();
    let switch = rules::switch_evidence(state);
    let settling = previous_settling(state);
    StatusReport {
        secret: info.name.clone(),
        user: state.user.name.clone(),
        rotation_enabled: info.rotation_enabled,
        last_rotated: last.map(|(t, _)| rfc3339(t)),
        last_rotated_by: last.map(|(_, by)| by),
        next_rotation: info.next_rotation.map(rfc3339),
        cutover: rules::recorded_cutover(info, state.now).map(rfc3339),
        versions_not_shown: state.holdings.len() - state.holdings.iter().filter(shown).count(),
        versions: state
            .holdings
            .iter()
            .filter(shown)
            .map(|h| VersionRow {
                version_id: h.version.clone(),
                labels: h.labels.clone(),
                key_id: h.key_id().map(str::to_string),
            })
            .collect(),
        keys: state
            .keys
            .iter()
            .map(|k| KeyRow {
                key_id: k.id.clone(),
                status: k.status.as_str(),
                created: rfc3339(k.created),
                last_used: k.last_use.as_ref().map(LastUsed::from),
                held_by: state
                    .labels_holding(&k.id)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                created_at: k.created,
                last_use: k.last_use.clone(),
            })
            .collect(),
        previous_settling_until: settling.map(rfc3339),
        switch: switch.as_ref().map(|e| SwitchRow {
            current_key_id: e.current_key.clone(),
            current_used_since_cutover: e.switched,
            current_last_used: e.current_use.as_ref().map(LastUsed::from),
            previous_key_id: e.previous_key.clone(),
            previous_last_used: e.previous_use.as_ref().map(LastUsed::from),
        }),
        sinks,
        restarts,
        problems,
        facts: StatusFacts {
            last_rotated: last.map(|(t, _)| t),
            next_rotation: info.next_rotation,
            previous_settling_until: settling,
            switch,
        },
    }
}
