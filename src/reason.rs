//! Why an object is in the state it is. Every reason a status condition can
//! carry is named once here (Kubernetes style: CamelCase, specific), and a
//! failure carries its reason and whether retrying can help, from the layer
//! that saw it up to the retry decision and the status. Pure: no I/O.

use serde::Serialize;

/// The reason of a status condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// Not reconciled yet.
    Pending,
    /// Everything the manifest declares is true in AWS.
    Reconciled,
    /// The last pass found nothing to write.
    UpToDate,
    /// The last pass wrote what differed.
    Applied,
    /// AWS differs in a way secretwire must not fix (it would need a new value).
    Drift,
    /// The manifest is invalid; its last good version is what is applied.
    LastGoodVersion,
    InvalidManifest,
    /// Exists without our ownership tag (or with another controller's).
    Conflict,
    /// Waits on another object's problem.
    Blocked,
    /// An external reference names a value that does not exist.
    ValueNotFound,
    /// A declared value is missing and has no `initialValue`.
    NoInitialValue,
    KmsKeyNotFound,
    ServiceNotFound,
    UnsupportedDeploymentController,
    /// The revision the service runs could not be read.
    RevisionUnreadable,
    /// The task definition could not be rendered from its base.
    RenderFailed,
    /// `initialValue.fromEnv` names a variable the controller's environment lacks.
    MissingEnvironmentVariable,
    ValueGenerationFailed,
    /// A resource appeared, without our tag, between our read and our create.
    CreateRaced,
    AccessDenied,
    /// AWS throttled the calls beyond every retry.
    Throttled,
    /// AWS answered 5xx, timed out or could not be reached.
    AwsUnavailable,
    /// AWS refused the request (validation, quota, state).
    AwsRejected,
    RedeployFailed,
    /// No deployment started by secretwire yet.
    NoRollout,
    /// A deployment secretwire started is in progress.
    NewDeployment,
    /// A redeploy waits for a slot (`--max-parallel-rollouts`).
    RolloutPending,
    RolloutCompleted,
    RolloutFailed,
    /// The circuit breaker rolled the deployment back.
    RolledBack,
    /// Not ended within `--rollout-timeout`.
    RolloutTimedOut,
    /// Held: the first rollout of the same value change failed.
    WaveHeld,
    /// A deployment secretwire did not start replaced a failed one.
    ManualDeployment,
    /// A value in another account that this account's tasks cannot read as set up.
    CrossAccount,
    /// The role of a `Target` could not be assumed.
    TargetUnreachable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Pending => "Pending",
            Reason::Reconciled => "Reconciled",
            Reason::UpToDate => "UpToDate",
            Reason::Applied => "Applied",
            Reason::Drift => "Drift",
            Reason::LastGoodVersion => "LastGoodVersion",
            Reason::InvalidManifest => "InvalidManifest",
            Reason::Conflict => "Conflict",
            Reason::CrossAccount => "CrossAccount",
            Reason::TargetUnreachable => "TargetUnreachable",
            Reason::Blocked => "Blocked",
            Reason::ValueNotFound => "ValueNotFound",
            Reason::NoInitialValue => "NoInitialValue",
            Reason::KmsKeyNotFound => "KmsKeyNotFound",
            Reason::ServiceNotFound => "ServiceNotFound",
            Reason::UnsupportedDeploymentController => "UnsupportedDeploymentController",
            Reason::RevisionUnreadable => "RevisionUnreadable",
            Reason::RenderFailed => "RenderFailed",
            Reason::MissingEnvironmentVariable => "MissingEnvironmentVariable",
            Reason::ValueGenerationFailed => "ValueGenerationFailed",
            Reason::CreateRaced => "CreateRaced",
            Reason::AccessDenied => "AccessDenied",
            Reason::Throttled => "Throttled",
            Reason::AwsUnavailable => "AwsUnavailable",
            Reason::AwsRejected => "AwsRejected",
            Reason::RedeployFailed => "RedeployFailed",
            Reason::NoRollout => "NoRollout",
            Reason::NewDeployment => "NewDeployment",
            Reason::RolloutPending => "RolloutPending",
            Reason::RolloutCompleted => "RolloutCompleted",
            Reason::RolloutFailed => "RolloutFailed",
            Reason::RolledBack => "RolledBack",
            Reason::RolloutTimedOut => "RolloutTimedOut",
            Reason::WaveHeld => "WaveHeld",
            Reason::ManualDeployment => "ManualDeployment",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Retry {
    /// Throttling, 5xx, timeouts: retry with backoff.
    Transient,
    /// The same request gets the same answer until its inputs change (or a
    /// person changes AWS): do not retry before then.
    Terminal,
}

/// One object's failure, as its status and the retry decision see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub reason: Reason,
    pub retry: Retry,
    pub message: String,
}

impl Failure {
    pub fn transient(&self) -> bool {
        self.retry == Retry::Transient
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The action and resource an AccessDenied message names. AWS words it
/// "User: ARN is not authorized to perform: iam:CreateRole on resource: ARN
/// because ..." (IAM, STS, SSM, Secrets Manager, ECS, KMS alike).
pub fn denied_action(message: &str) -> Option<(String, Option<String>)> {
    let rest = &message[message.find("perform: ")? + "perform: ".len()..];
    let action: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    if !action.contains(':') {
        return None;
    }
    let resource = rest
        .find("on resource: ")
        .map(|i| rest[i + "on resource: ".len()..].chars().take_while(|c| !c.is_whitespace()).collect::<String>());
    Some((action.trim_end_matches(['.', ',']).to_string(), resource.map(|r| r.trim_end_matches(['.', ',']).into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_messages_name_their_action_and_resource() {
        let iam = "User: arn:aws:sts::123456789012:assumed-role/secretwire/i-0 is not authorized to perform: \
                   iam:CreateRole on resource: arn:aws:iam::123456789012:role/web-execution because no \
                   identity-based policy allows the iam:CreateRole action";
        assert_eq!(
            denied_action(iam),
            Some(("iam:CreateRole".into(), Some("arn:aws:iam::123456789012:role/web-execution".into())))
        );
        let no_resource = "User: arn:aws:iam::1:user/x is not authorized to perform: ssm:DescribeParameters";
        assert_eq!(denied_action(no_resource), Some(("ssm:DescribeParameters".into(), None)));
        assert_eq!(denied_action("Access denied"), None);
    }

    #[test]
    fn every_reason_is_camel_case() {
        for r in [Reason::KmsKeyNotFound, Reason::ServiceNotFound, Reason::MissingEnvironmentVariable, Reason::Drift] {
            let s = r.as_str();
            assert!(s.chars().next().unwrap().is_ascii_uppercase() && !s.contains([' ', '_', '-']), "{s}");
            assert_eq!(serde_json::to_value(r).unwrap(), s);
        }
    }
}
