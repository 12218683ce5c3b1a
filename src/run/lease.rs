//! The run lease at work (`run --lease dynamodb:TABLE`): a standby reads the
//! lease every renewal interval until it may take it; the leader renews it
//! in the background and fences each batch of writes with a conditional
//! renewal on its generation. A leader that loses the lease, or cannot renew
//! it in time, stops: `run` exits 1 and its orchestrator restarts it as a
//! standby (as controller-runtime's leader election does).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tracing::{info, warn};

use super::leader::{LeaseTiming, Step, must_stop, step};
use super::status::Shared;
use crate::aws::lease::LeaseTable;

pub struct Lease {
    table: LeaseTable,
    /// This replica's identity (host, process, random), as `leaseHolder` shows it.
    pub me: String,
    timing: LeaseTiming,
    /// The fencing token: fixed for as long as this replica leads.
    generation: u64,
    renewed_ms: AtomicU64,
    lost: watch::Sender<bool>,
}

fn now_ms() -> u64 {
    (crate::follow::now() * 1000.0) as u64
}

/// A replica identity unique per process: host, pid and a random tail.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let mut tail = [0u8; 3];
    let _ = getrandom::fill(&mut tail);
    format!("{host}-{}-{:02x}{:02x}{:02x}", std::process::id(), tail[0], tail[1], tail[2])
}

/// One look at the lease: `Ok(generation)` when this replica leads now,
/// `Err(holder)` when it stands by (the holder, when it read one).
async fn look(
    table: &LeaseTable,
    me: &str,
    timing: LeaseTiming,
    now: u64,
) -> Result<Result<u64, Option<String>>, crate::aws::AwsError> {
    let seen = table.read().await?;
    let expires = now + timing.ttl.as_millis() as u64;
    let (generation, won) = match step(now, seen.as_ref(), me) {
        Step::Standby { holder } => return Ok(Err(Some(holder))),
        Step::Take { generation } => (generation, table.take(me, generation, expires, seen.as_ref(), now).await?),
        // A take whose answer was lost: it is ours if a renewal on it succeeds.
        Step::Ours { generation } => (generation, table.renew(me, generation, expires).await?),
    };
    // Lost a race to another replica: read again next time.
    Ok(if won { Ok(generation) } else { Err(None) })
}

impl Lease {
    /// Waits as a standby until this replica takes the lease; `None` when
    /// asked to stop first. `/readyz` is 200 while the lease table answers.
    pub async fn standby(
        table: LeaseTable,
        timing: LeaseTiming,
        shared: &Shared,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Arc<Lease>>> {
        let me = identity();
        info!(table = %table.table, identity = %me, "Waiting for the lease");
        loop {
            match table.ensure().await {
                Ok(()) => break,
                Err(e) if e.transient => warn!(error = %e, "The lease table does not answer; trying again"),
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(None),
                _ = tokio::time::sleep(timing.renew) => {}
            }
        }
        loop {
            let now = now_ms();
            let looked = look(&table, &me, timing, now).await;
            {
                let mut b = shared.board();
                b.leader = false;
                match &looked {
                    Ok(Ok(_)) => {}
                    Ok(Err(holder)) => {
                        b.ready = true;
                        if holder.is_some() {
                            b.lease_holder = holder.clone();
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "Could not read the lease; standby is not ready");
                        b.ready = false;
                    }
                }
            }
            if let Ok(Ok(generation)) = looked {
                info!(identity = %me, generation, "Took the lease: leading");
                let mut b = shared.board();
                b.leader = true;
                b.lease_holder = Some(me.clone());
                drop(b);
                let (lost, _) = watch::channel(false);
                return Ok(Some(Arc::new(Lease {
                    table,
                    me,
                    timing,
                    generation,
                    renewed_ms: AtomicU64::new(now),
                    lost,
                })));
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(None),
                _ = tokio::time::sleep(timing.renew) => {}
            }
        }
    }

    /// Set to true once this replica may no longer lead.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.subscribe()
    }

    /// Renews the lease on this replica's generation (the fencing token):
    /// true when it still leads, and writes may go on.
    pub async fn fence(&self) -> bool {
        let now = now_ms();
        let generation = self.generation;
        let expires = now + self.timing.ttl.as_millis() as u64;
        match self.table.renew(&self.me, generation, expires).await {
            Ok(true) => {
                self.renewed_ms.store(now, Ordering::Relaxed);
                true
            }
            Ok(false) => {
                warn!(identity = %self.me, generation, "The lease moved to another replica");
                let _ = self.lost.send(true);
                false
            }
            Err(e) => {
                warn!(error = %e, "Could not renew the lease");
                if must_stop(now_ms(), self.renewed_ms.load(Ordering::Relaxed), self.timing) {
                    let _ = self.lost.send(true);
                }
                false
            }
        }
    }

    /// Renews every `renew` in the background until the lease is lost.
    pub fn spawn_renewer(self: &Arc<Self>) {
        let lease = self.clone();
        tokio::spawn(async move {
            let mut lost = lease.lost();
            loop {
                tokio::select! {
                    _ = lost.wait_for(|l| *l) => break,
                    _ = tokio::time::sleep(lease.timing.renew) => {}
                }
                // A failed renewal past the margin marks the lease lost (in `fence`).
                lease.fence().await;
            }
        });
    }
}
