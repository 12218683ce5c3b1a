//! Leader election over the lease item (pure): who may take it, and when a
//! leader must stop. The lease lasts `ttl` and is renewed every `renew`; a
//! leader that has not renewed for `ttl` stops (exits), so by the time a
//! standby may take an expired lease the old leader no longer writes.

use std::time::Duration;

use crate::aws::lease::LeaseItem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
    pub renew: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(15), renew: Duration::from_secs(5) }
    }
}

/// What a replica that does not lead does with the lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds it, or it expired: take it with this generation.
    Take { generation: u64 },
    /// Someone else holds it: stay standby.
    Standby { holder: String },
    /// It names this replica: a take whose answer was lost did take it.
    /// Lead with this generation once a renewal on it succeeds.
    Ours { generation: u64 },
}

pub fn step(now_ms: u64, lease: Option<&LeaseItem>, me: &str) -> Step {
    match lease {
        None => Step::Take { generation: 1 },
        Some(l) if l.holder == me => Step::Ours { generation: l.generation },
        Some(l) if l.expires_ms < now_ms => Step::Take { generation: l.generation + 1 },
        Some(l) => Step::Standby { holder: l.holder.clone() },
    }
}

/// Whether a leader whose last successful renewal was at `renewed_ms` must
/// stop: its lease may have expired, so a standby may lead already. It stops
/// one renewal early, leaving room for clock skew between replicas.
pub fn must_stop(now_ms: u64, renewed_ms: u64, timing: LeaseTiming) -> bool {
    let margin = timing.ttl.saturating_sub(timing.renew).as_millis() as u64;
    now_ms.saturating_sub(renewed_ms) >= margin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(holder: &str, generation: u64, expires_ms: u64) -> LeaseItem {
        LeaseItem { holder: holder.into(), generation, expires_ms }
    }

    #[test]
    fn an_absent_or_expired_lease_is_taken_with_the_next_generation_and_a_live_one_is_left() {
        assert_eq!(step(1_000, None, "a"), Step::Take { generation: 1 });
        assert_eq!(step(1_000, Some(&item("b", 7, 999)), "a"), Step::Take { generation: 8 });
        assert_eq!(step(1_000, Some(&item("b", 7, 5_000)), "a"), Step::Standby { holder: "b".into() });
        assert_eq!(step(1_000, Some(&item("a", 7, 999)), "a"), Step::Ours { generation: 7 }, "a lost answer");
    }

    #[test]
    fn a_leader_stops_before_its_lease_can_have_expired() {
        let t = LeaseTiming::default();
        assert!(!must_stop(14_000, 5_000, t), "renewed 9 s ago: within ttl - renew");
        assert!(must_stop(15_000, 5_000, t), "10 s without a renewal: a standby may take it within 5 s");
    }
}
