//! Tracing set-up. One rule here is not negotiable: the AWS SDK logs whole
//! HTTP requests at TRACE (`transmitting request`), bodies included, which
//! would print a new secret's value. Those events are dropped at every level.

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Whether an event may carry a raw HTTP request or response (and so a value).
pub fn carries_http_body(meta: &Metadata<'_>) -> bool {
    let sdk = meta.target().starts_with("aws_smithy")
        || meta.target().starts_with("aws_sdk")
        || meta.target().starts_with("hyper");
    sdk && (meta.fields().field("request").is_some() || meta.fields().field("response").is_some())
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
    let redact = filter_fn(|meta| !carries_http_body(meta));
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(verbose > 0);
    let _ = match format {
        LogFormat::Text => registry.with(fmt.with_filter(redact)).try_init(),
        LogFormat::Json => registry.with(fmt.json().with_filter(redact)).try_init(),
    };
}
