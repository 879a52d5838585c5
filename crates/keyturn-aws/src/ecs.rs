//! ECS services as restart targets over `aws-sdk-ecs`: UpdateService with forceNewDeployment to
//! restart one, DescribeServices to read its primary deployment.

use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState};
use aws_sdk_ecs::Client;
use keyturn_core::ports::{ApiError, ApiResult, Rollout, RolloutState};

use crate::errors::from_sdk;
use crate::time::to_offset;

/// ECS, as restarts need it.
#[derive(Debug, Clone)]
pub struct Services {
    client: Client,
}

impl Services {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// UpdateService with forceNewDeployment: ECS starts a new deployment of the same task
    /// definition, whose tasks read the secret again.
    pub async fn force_deployment(&self, cluster: &str, service: &str) -> ApiResult<()> {
        self.client
            .update_service()
            .cluster(cluster)
            .service(service)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }

    /// DescribeServices: the primary deployment (`None` when the service has none), with the
    /// tasks older deployments still run.
    pub async fn rollout(&self, cluster: &str, service: &str) -> ApiResult<Option<Rollout>> {
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(from_sdk)?;
        let Some(found) = out.services().first() else {
            let reason = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("not returned");
            return Err(ApiError::NotFound(format!(
                "ECS service {service} in cluster {cluster}: {reason}"
            )));
        };
        Ok(primary_rollout(found.deployments(), found.desired_count()))
    }
}

/// The primary deployment as a rollout. Without a `rolloutState` (a service behind a Classic Load
/// Balancer, or an older API answer) it counts as completed once it runs every desired task and
/// no other deployment is left.
pub fn primary_rollout(deployments: &[Deployment], desired: i32) -> Option<Rollout> {
    let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"))?;
    let started = primary.created_at().and_then(to_offset)?;
    let old_tasks: i32 = deployments
        .iter()
        .filter(|d| d.status() != Some("PRIMARY") && d.status() != Some("INACTIVE"))
        .map(|d| d.running_count().max(0))
        .sum();
    let state = match primary.rollout_state() {
        Some(DeploymentRolloutState::Completed) => RolloutState::Completed,
        Some(DeploymentRolloutState::Failed) => RolloutState::Failed(
            primary
                .rollout_state_reason()
                .unwrap_or("the deployment failed")
                .to_string(),
        ),
        Some(DeploymentRolloutState::InProgress) => RolloutState::InProgress,
        _ if primary.running_count() >= desired && old_tasks == 0 => RolloutState::Completed,
        _ => RolloutState::InProgress,
    };
    Some(Rollout {
        id: primary.id().unwrap_or_default().to_string(),
        started,
        state,
        old_tasks: u32::try_from(old_tasks).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::DateTime;

    fn deployment(status: &str, state: Option<DeploymentRolloutState>, running: i32) -> Deployment {
        Deployment::builder()
            .id(format!("ecs-svc/{status}"))
            .status(status)
            .set_rollout_state(state)
            .running_count(running)
            .created_at(DateTime::from_secs(1_800_000_000))
            .build()
    }

    #[test]
    fn the_primary_deployment_and_the_tasks_older_ones_still_run() {
        let done = primary_rollout(
            &[deployment(
                "PRIMARY",
                Some(DeploymentRolloutState::Completed),
                2,
            )],
            2,
        )
        .expect("primary");
        assert_eq!((done.state, done.old_tasks), (RolloutState::Completed, 0));
        assert_eq!(done.id, "ecs-svc/PRIMARY");
        let rolling = primary_rollout(
            &[
                deployment("PRIMARY", Some(DeploymentRolloutState::InProgress), 1),
                deployment("ACTIVE", None, 1),
            ],
            2,
        )
        .expect("primary");
        assert_eq!(
            (rolling.state, rolling.old_tasks),
            (RolloutState::InProgress, 1)
        );
        let failed = primary_rollout(
            &[deployment(
                "PRIMARY",
                Some(DeploymentRolloutState::Failed),
                0,
            )],
            2,
        )
        .expect("primary");
        assert!(matches!(failed.state, RolloutState::Failed(_)));
        let unstated = primary_rollout(&[deployment("PRIMARY", None, 2)], 2).expect("primary");
        assert_eq!(unstated.state, RolloutState::Completed);
        let short = primary_rollout(&[deployment("PRIMARY", None, 1)], 2).expect("primary");
        assert_eq!(short.state, RolloutState::InProgress);
        assert_eq!(primary_rollout(&[deployment("ACTIVE", None, 1)], 2), None);
    }
}
