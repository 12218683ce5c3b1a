//! Command output on stdout (logs and diagnostics go to stderr).

/// Writes to stdout; a closed pipe (`secretwire render web | head`) is not an error.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
