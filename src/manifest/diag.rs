//! Located diagnostics, printed the way compilers do:
//! `path:line:col: error: message`, followed by the offending line.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: u64,
    pub column: u64,
    pub message: String,
    /// The source line the diagnostic points at, shown under the message.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), line: 0, column: 0, message: message.into(), source_line: None }
    }

    pub fn at(path: &Path, text: &str, loc: Location, message: impl Into<String>) -> Self {
        Self::at_line_col(path, text, loc.line(), loc.column(), message)
    }

    pub fn at_line_col(path: &Path, text: &str, line: u64, column: u64, message: impl Into<String>) -> Self {
        let source_line =
            (line > 0).then(|| text.lines().nth((line - 1) as usize)).flatten().map(|l| l.trim_end().to_string());
        Self { path: path.to_path_buf(), line, column, message: message.into(), source_line }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: error: {}", self.path.display(), self.message);
        }
        write!(f, "{}:{}:{}: error: {}", self.path.display(), self.line, self.column, self.message)?;
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret = " ".repeat(self.column.saturating_sub(1) as usize);
            write!(f, "\n{pad} |\n{gutter} | {src}\n{pad} | {caret}^")?;
        }
        Ok(())
    }
}
