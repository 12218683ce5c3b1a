//! Clients for a `Target`: another account and region, reached through STS
//! AssumeRole from the controller's own credentials. The SDK's identity
//! cache holds the session and asks for a new one before it expires (AWS
//! STS API Reference, AssumeRole: "DurationSeconds ... By default, the value
//! is set to 3600 seconds"); each target has its own rate limiter, since
//! AWS's request rates are per account and region.

use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider, error::CredentialsError};

use super::{Aws, AwsError, classify, limit};
use crate::arn::Scope;
use crate::model::TargetDef;

/// Credentials of one role session, asked for through the controller's
/// (counted, rate-limited) STS client.
#[derive(Debug)]
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    /// The session `for_target` asked for, handed out first (not asked for twice).
    first: std::sync::Mutex<Option<Credentials>>,
}

impl AssumeRole {
    async fn credentials(&self) -> Result<Credentials, AwsError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .send()
            .await
            .map_err(|e| classify("AssumeRole", e))?;
        let c = out.credentials().ok_or_else(|| AwsError::other("AssumeRole", "no credentials in the answer"))?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "secretwire-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            if let Some(c) = self.first.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Ok(c);
            }
            self.credentials().await.map_err(|e| CredentialsError::provider_error(e.to_string()))
        })
    }
}

/// The RoleSessionName a Target gets when its manifest names none.
pub fn default_session_name(controller_id: &str) -> String {
    let mut s = format!("secretwire-{controller_id}");
    s.truncate(64);
    s
}

impl Aws {
    /// Clients that act in `t`'s account and region as its role. The role is
    /// assumed once here, so a trust policy that refuses the controller is
    /// reported at once, naming the target (and the later refreshes reuse
    /// the same provider through the SDK's identity cache).
    pub async fn for_target(
        &self,
        t: &TargetDef,
        controller_id: &str,
        limits: limit::RateLimits,
    ) -> Result<Aws, AwsError> {
        let assume = AssumeRole {
            sts: self.sts.clone(),
            role_arn: t.role_arn.clone(),
            session_name: t.session_name.clone().unwrap_or_else(|| default_session_name(controller_id)),
            external_id: t.external_id.clone(),
            first: Default::default(),
        };
        let first = assume.credentials().await.map_err(|e| AwsError {
            message: format!("Target `{}`: cannot assume {}: {}", t.name, t.role_arn, e.message),
            ..e
        })?;
        *assume.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
        let limiter = Arc::new(limit::Limiter::new(limits, self.metrics.clone()));
        let conf = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(assume))
            .region(aws_config::Region::new(t.region.clone()))
            .http_client(limit::LimitedClient { inner: super::https_client(), limiter })
            .build();
        Ok(Aws::from_config(conf, Scope::new(&t.region, &t.account), self.metrics.clone(), Some(t.name.clone())))
    }
}
