//! The event queue as `run` uses it: a long-poll receive loop that hands
//! batches over a channel, deletes in batches of ten, and returning a
//! message to the queue (visibility change) without deleting it.

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::retry::Backoff;
use super::{Aws, classify};

/// One received SQS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub handle: String,
    pub body: String,
    pub receive_count: u32,
}

/// A received message's identity: enough to delete it or return it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Receipt {
    pub id: String,
    pub handle: String,
}

/// The queue `run` consumes.
#[derive(Clone)]
pub struct Queue {
    pub aws: Aws,
    pub url: String,
    /// Known when secretwire owns the queue (Targets forward their events to it).
    pub arn: Option<String>,
}

/// SQS's longest visibility timeout.
const MAX_VISIBILITY: u64 = 43_200;

impl Queue {
    /// Long-polls (20 s, batches of 10) and sends batches on `tx` until
    /// stopped. A failed receive is tried again after the one backoff policy.
    pub async fn receive(self, visibility: Duration, tx: mpsc::Sender<Vec<Message>>, mut stop: watch::Receiver<bool>) {
        let visibility = visibility.as_secs().clamp(1, MAX_VISIBILITY) as i32;
        // A 20 s long poll must not hit the client's read timeout.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .read_timeout(Duration::from_secs(30))
            .operation_attempt_timeout(Duration::from_secs(35))
            .operation_timeout(Duration::from_secs(40))
            .build();
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let req = self
                .aws
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(20)
                .visibility_timeout(visibility)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .customize()
                .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts.clone()))
                .send();
            let res = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = req => r,
            };
            match res {
                Ok(out) => {
                    failures = 0;
                    let batch: Vec<Message> = out.messages().iter().map(message).collect();
                    if !batch.is_empty() && tx.send(batch).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let e = classify("ReceiveMessage", e);
                    let delay = Backoff::RECEIVE.delay(failures);
                    failures = failures.saturating_add(1);
                    warn!(error = %e, retry_in = ?delay, "Receiving events failed");
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Deletes handled messages, ten per call. A message not deleted comes
    /// back and is found fresh or already handled.
    pub async fn delete(&self, receipts: &[Receipt]) {
        for chunk in receipts.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(&r.handle).build().ok()
                })
                .collect();
            let res = self.aws.sqs.delete_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await;
            if let Err(e) = res {
                warn!(error = %classify("DeleteMessageBatch", e), "Could not delete handled messages");
            }
        }
    }

    /// Makes a received message visible again after `delay`, undeleted. If
    /// this fails, it comes back when its visibility timeout ends anyway.
    pub async fn release(&self, receipt: &Receipt, delay: Duration) {
        let res = self
            .aws
            .sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&receipt.handle)
            .visibility_timeout(delay.as_secs().min(MAX_VISIBILITY) as i32)
            .send()
            .await;
        if let Err(e) = res {
            debug!(error = %classify("ChangeMessageVisibility", e), "Message returns after its visibility timeout instead");
        }
    }
}

fn message(m: &aws_sdk_sqs::types::Message) -> Message {
    Message {
        id: m.message_id().unwrap_or_default().to_string(),
        handle: m.receipt_handle().unwrap_or_default().to_string(),
        body: m.body().unwrap_or_default().to_string(),
        receive_count: m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    }
}
