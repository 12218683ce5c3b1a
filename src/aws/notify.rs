//! Rollout notifications as custom events on the default bus (`source:
//! secretwire`), so teams route them with rules of their own.

use super::{Aws, AwsError, classify};

pub async fn put_event(aws: &Aws, detail_type: &str, detail: &str) -> Result<(), AwsError> {
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("secretwire")
        .detail_type(detail_type)
        .detail(detail)
        .event_bus_name("default")
        .build();
    let out = aws.events.put_events().entries(entry).send().await.map_err(|e| classify("PutEvents", e))?;
    // PutEvents answers 200 with per-entry failures.
    match out.entries().first().and_then(|e| e.error_code()) {
        Some(code) if out.failed_entry_count() > 0 => Err(AwsError {
            operation: "PutEvents",
            code: Some(code.to_string()),
            message: out.entries()[0].error_message().unwrap_or_default().to_string(),
            transient: code.contains("Throttl") || code.contains("Internal"),
            ambiguous: false,
        }),
        _ => Ok(()),
    }
}
