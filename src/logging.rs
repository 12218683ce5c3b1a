//! Tracing set-up. One rule here is not negotiable: the AWS SDK logs whole
//! HTTP requests at TRACE (`transmitting request`), bodies included, which
//! would print a new secret's value. Those events are dropped at every level.

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Whether an event may carry a raw HTTP request or response (and so a value).
pub fn carries_http_body(meta: &Metadata<'_>) -> bool {
    let sdk = meta.target().starts_with("aws_smithy")
        || meta.target().starts_with("aws_sdk")
        || meta.target().starts_with("hyper");
    sdk && (meta.fields().field("request").is_some() || meta.fields().field("response").is_some())
}

/// The log layer: text or JSON lines on `writer`, with HTTP bodies dropped.
/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

fn layer<S, W>(format: LogFormat, writer: W, with_target: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let redact = filter_fn(|meta| !carries_http_body(meta));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_target(with_target).with_ansi(false);
    match format {
        LogFormat::Text => fmt.with_filter(redact).boxed(),
        LogFormat::Json => fmt.json().with_filter(redact).boxed(),
    }
}

/// Installs the global subscriber: logs on stderr, stdout stays for output.
pub fn init(format: LogFormat, verbose: u8, quiet: u8) {
    let default = match (verbose, quiet) {
        (0, 0) => "secretwire=info,warn",
        (0, 1) => "warn",
        (0, _) => "error",
        (1, _) => "secretwire=debug,info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("SECRETWIRE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::registry().with(filter).with(layer(format, std::io::stderr, verbose > 0)).try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sdk_events_carrying_http_bodies_are_dropped_at_trace_level() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = Captured::default();
            let writer = out.clone();
            let subscriber = tracing_subscriber::registry().with(EnvFilter::new("trace")).with(layer(
                format,
                move || writer.clone(),
                true,
            ));
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", request = ?"SecretString=LEAK-1", "transmitting request");
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator::http", response = ?"LEAK-2", "read HTTP response body");
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", attempt = 1, "beginning attempt");
                tracing::info!(parameter = "/web/db", "Created parameter");
            });
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            assert!(!text.contains("LEAK"), "{text}");
            assert!(
                text.contains("beginning attempt") && text.contains("Created parameter"),
                "other events still logged: {text}"
            );
        }
    }
}
