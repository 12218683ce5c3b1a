//! Client-side rate limiting per AWS API. AWS throttles per account and API
//! (RegisterTaskDefinition 1/s with a burst of 20, UpdateService 5/s, ...);
//! a controller that ignores that spends its time in throttling retries and
//! eats the budget deploy pipelines share with it. Every attempt of every call
//! passes one token bucket per operation in the HTTP connector, so SDK retries
//! are limited too. Reservations are first come, first served: with
//! `--concurrency N` no call waits longer than about N / rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::metrics::Metrics;

/// `Service:Operation` of a request, put there by the call-counting interceptor.
#[derive(Debug, Clone)]
pub struct OperationName(pub Arc<str>);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Sustained calls per second.
    pub rate: f64,
    pub burst: f64,
}

/// Limits by `Service:Operation` (as in the `aws_calls` metric).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    pub by_operation: HashMap<String, Limit>,
    pub enabled: bool,
}

impl RateLimits {
    /// The documented per-account limits of the calls secretwire makes.
    pub fn aws_defaults() -> Self {
        let table: &[(&str, f64, f64)] = &[
            ("ECS:RegisterTaskDefinition", 1.0, 20.0),
            ("ECS:UpdateService", 5.0, 20.0),
            ("ECS:DescribeServices", 20.0, 50.0),
            ("ECS:DescribeTaskDefinition", 20.0, 50.0),
            ("SSM:PutParameter", 3.0, 3.0),
            ("SSM:AddTagsToResource", 3.0, 3.0),
            ("SSM:DescribeParameters", 40.0, 40.0),
            ("SSM:ListTagsForResource", 40.0, 40.0),
            ("Secrets Manager:CreateSecret", 50.0, 50.0),
            ("Secrets Manager:UpdateSecret", 50.0, 50.0),
            ("Secrets Manager:TagResource", 50.0, 50.0),
            ("Secrets Manager:ListSecrets", 50.0, 50.0),
            ("Secrets Manager:DescribeSecret", 50.0, 50.0),
            ("IAM:CreateRole", 10.0, 10.0),
            ("IAM:PutRolePolicy", 10.0, 10.0),
            ("IAM:UpdateAssumeRolePolicy", 10.0, 10.0),
            ("IAM:AttachRolePolicy", 10.0, 10.0),
            ("IAM:TagRole", 10.0, 10.0),
            ("IAM:GetRole", 20.0, 20.0),
            ("IAM:GetRolePolicy", 20.0, 20.0),
            ("IAM:ListAttachedRolePolicies", 20.0, 20.0),
            ("IAM:GetAccountAuthorizationDetails", 2.0, 2.0),
            ("KMS:DescribeKey", 100.0, 100.0),
        ];
        Self {
            by_operation: table
                .iter()
                .map(|(op, rate, burst)| (op.to_string(), Limit { rate: *rate, burst: *burst }))
                .collect(),
            enabled: true,
        }
    }

    /// Applies `Service:Operation=RATE[/BURST]` (e.g. `ECS:UpdateService=2/5`).
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (op, value) = spec
            .rsplit_once('=')
            .filter(|(op, _)| op.contains(':'))
            .ok_or_else(|| format!("`{spec}`: expected Service:Operation=RATE[/BURST], e.g. ECS:UpdateService=5/20"))?;
        let (rate, burst) = match value.split_once('/') {
            Some((r, b)) => (r, Some(b)),
            None => (value, None),
        };
        let rate: f64 = rate.parse().map_err(|_| format!("`{spec}`: rate is not a number"))?;
        let burst: f64 = match burst {
            Some(b) => b.parse().map_err(|_| format!("`{spec}`: burst is not a number"))?,
            None => rate.max(1.0),
        };
        if !(rate > 0.0 && rate.is_finite() && burst >= 1.0 && burst.is_finite()) {
            return Err(format!("`{spec}`: rate must be > 0, burst >= 1, operation like ECS:UpdateService"));
        }
        self.by_operation.insert(op.to_string(), Limit { rate, burst });
        Ok(())
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    limit: Limit,
}

impl Bucket {
    /// Takes one token; returns how long the caller must wait for it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.rate).min(self.limit.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.limit.rate) }
    }
}

#[derive(Debug)]
pub struct Limiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
    metrics: Arc<Metrics>,
}

impl Limiter {
    pub fn new(limits: RateLimits, metrics: Arc<Metrics>) -> Self {
        Self { limits, buckets: Mutex::new(HashMap::new()), metrics }
    }

    /// The wait before `operation` may be sent now.
    pub fn delay(&self, operation: &str) -> Duration {
        if !self.limits.enabled {
            return Duration::ZERO;
        }
        let Some(limit) = self.limits.by_operation.get(operation) else { return Duration::ZERO };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let bucket =
            buckets.entry(operation.to_string()).or_insert(Bucket { tokens: limit.burst, at: now, limit: *limit });
        let wait = bucket.reserve(now);
        if !wait.is_zero() {
            self.metrics.record_rate_limit_wait(operation, wait);
        }
        wait
    }
}

/// An HTTP client that waits for the limiter before each attempt.
#[derive(Debug, Clone)]
pub struct LimitedClient {
    pub inner: SharedHttpClient,
    pub limiter: Arc<Limiter>,
}

impl HttpClient for LimitedClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: SharedHttpConnector,
    limiter: Arc<Limiter>,
}

impl HttpConnector for LimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let wait = request.extension::<OperationName>().map(|op| self.limiter.delay(&op.0)).unwrap_or_default();
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_spaces_calls_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: 20.0, at: t0, limit: Limit { rate: 1.0, burst: 20.0 } };
        for _ in 0..20 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
        // Reservations queue up first come, first served.
        assert_eq!(b.reserve(t0), Duration::from_secs(1));
        assert_eq!(b.reserve(t0), Duration::from_secs(2));
        // Tokens come back at the rate, never above the burst.
        let mut idle = Bucket { tokens: 0.0, at: t0, limit: Limit { rate: 5.0, burst: 20.0 } };
        assert_eq!(idle.reserve(t0 + Duration::from_secs(60)), Duration::ZERO);
        assert!((idle.tokens - 19.0).abs() < 1e-9);
    }

    #[test]
    fn limits_are_configurable() {
        let mut l = RateLimits::aws_defaults();
        assert_eq!(l.by_operation["ECS:RegisterTaskDefinition"], Limit { rate: 1.0, burst: 20.0 });
        l.set("ECS:UpdateService=2/5").unwrap();
        assert_eq!(l.by_operation["ECS:UpdateService"], Limit { rate: 2.0, burst: 5.0 });
        l.set("Secrets Manager:ListSecrets=0.5").unwrap();
        assert_eq!(l.by_operation["Secrets Manager:ListSecrets"], Limit { rate: 0.5, burst: 1.0 });
        for bad in ["ECS:UpdateService", "ECS:UpdateService=0", "UpdateService=1", "ECS:X=1/0", "ECS:X=a"] {
            assert!(l.set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_operations_and_disabled_limits_never_wait() {
        let mut limits = RateLimits::aws_defaults();
        limits.set("ECS:UpdateService=1/1").unwrap();
        let l = Limiter::new(limits.clone(), Arc::new(Metrics::new()));
        assert_eq!(l.delay("ECS:UpdateService"), Duration::ZERO);
        assert!(l.delay("ECS:UpdateService") > Duration::from_millis(900));
        assert_eq!(l.delay("STS:GetCallerIdentity"), Duration::ZERO);
        let off = Limiter::new(RateLimits { enabled: false, ..limits }, Arc::new(Metrics::new()));
        for _ in 0..10 {
            assert_eq!(off.delay("ECS:UpdateService"), Duration::ZERO);
        }
    }
}
