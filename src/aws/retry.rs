//! The one retry policy of the product: exponential backoff with *full
//! jitter* (each delay drawn uniformly from zero to the exponential ceiling,
//! as AWS's Architecture Blog "Exponential Backoff And Jitter" recommends),
//! the randomness from the operating system's generator. Writes, re-reads,
//! the start-up queue setup, the receive loop, per-object retries in `run`
//! and redeploys that could not read their service all draw from it.

use std::time::Duration;

/// Exponential ceilings `min * 2^attempt`, capped at `max`; `times` delays at
/// most (None: unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    pub times: Option<usize>,
}

impl Backoff {
    /// Around one AWS call that the SDK already retried: rides out longer
    /// throttling and IAM propagation (about 30 s in the worst case).
    pub const CALL: Backoff = Backoff { min: Duration::from_millis(250), max: Duration::from_secs(8), times: Some(6) };
    /// The receive loop, after a failed ReceiveMessage: never gives up.
    pub const RECEIVE: Backoff = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(30), times: None };

    /// Per-object retries in `run`: 1 s doubling, capped at `cap` (the resync interval).
    pub fn object(cap: Duration) -> Backoff {
        Backoff { min: Duration::from_secs(1), max: cap.max(Duration::from_secs(1)), times: None }
    }

    /// The exponential ceiling of the `attempt`-th delay (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The `attempt`-th delay: uniform in `[0, ceiling]` (full jitter), never
    /// below a millisecond so a retry never spins.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        ceiling.mul_f64(unit_random()).max(Duration::from_millis(1))
    }
}

/// A uniform draw from `[0, 1)` from the operating system's generator. If the
/// generator fails (it does not on Linux), the full ceiling is used: a retry
/// that waits longer is safe, one that waits zero is not.
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 1.0,
    }
}

/// The delays of one retry sequence, for `backon`.
#[derive(Debug, Clone)]
pub struct Delays {
    policy: Backoff,
    attempt: u32,
}

impl Iterator for Delays {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        if self.policy.times.is_some_and(|t| self.attempt as usize >= t) {
            return None;
        }
        let d = self.policy.delay(self.attempt);
        self.attempt += 1;
        Some(d)
    }
}

impl backon::BackoffBuilder for Backoff {
    type Backoff = Delays;
    fn build(self) -> Delays {
        Delays { policy: self, attempt: 0 }
    }
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    #[test]
    fn delays_are_full_jitter_under_an_exponential_ceiling_and_bounded_in_number() {
        let p = Backoff::CALL;
        let delays: Vec<Duration> = p.build().collect();
        assert_eq!(delays.len(), 6);
        for (i, d) in delays.iter().enumerate() {
            assert!(*d <= p.ceiling(i as u32), "{i}: {d:?} over {:?}", p.ceiling(i as u32));
            assert!(*d >= Duration::from_millis(1));
        }
        assert_eq!(p.ceiling(0), Duration::from_millis(250));
        assert_eq!(p.ceiling(3), Duration::from_secs(2));
        assert_eq!(p.ceiling(30), Duration::from_secs(8));
        assert!(Backoff::RECEIVE.build().take(100).count() == 100, "the receive loop never gives up");
    }

    #[test]
    fn the_jitter_is_random_not_a_function_of_the_clock() {
        // 200 draws under a 10 s ceiling: a real generator spreads them over the
        // whole range (the old jitter took the clock's fraction and bunched them).
        let p = Backoff { min: Duration::from_secs(10), max: Duration::from_secs(10), times: None };
        let draws: Vec<f64> = (0..200).map(|_| p.delay(0).as_secs_f64()).collect();
        let low = draws.iter().filter(|d| **d < 2.5).count();
        let high = draws.iter().filter(|d| **d > 7.5).count();
        assert!(low > 20 && high > 20, "draws are not spread: {low} low, {high} high");
        let distinct: std::collections::BTreeSet<u64> = draws.iter().map(|d| (d * 1e6) as u64).collect();
        assert!(distinct.len() > 190);
    }
}
