//! The glob patterns of a tenant file: `*` matches within one
//! `/`-separated segment, `**` across segments; everything else is literal.
//! Pure string work.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`: any run of bytes without `/`.
    Star,
    /// `**`: any run of bytes.
    Stars,
}

impl Glob {
    pub fn new(text: &str) -> Self {
        let b = text.as_bytes();
        let mut tokens = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'*' {
                let run = b[i..].iter().take_while(|c| **c == b'*').count();
                tokens.push(if run >= 2 { Token::Stars } else { Token::Star });
                i += run;
            } else {
                tokens.push(Token::Byte(b[i]));
                i += 1;
            }
        }
        Self { text: text.to_string(), tokens }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` matches. `**/` also matches no directory at all, so
    /// `teams/**/x.yaml` matches `teams/x.yaml`.
    pub fn matches(&self, s: &str) -> bool {
        self.run(s.as_bytes(), false)
    }

    /// Whether every string the IAM pattern `s` stands for matches: a `*` or
    /// `?` of `s` is consumed only by a `*`/`**` of this glob (a `*` of `s`
    /// does not span a `/` unless `**` consumes it). Bytes compare
    /// ASCII-case-insensitively when `fold` (IAM action names).
    pub fn covers(&self, s: &str, fold: bool) -> bool {
        if fold {
            return Glob::new(&self.text.to_ascii_lowercase()).run(s.to_ascii_lowercase().as_bytes(), true);
        }
        self.run(s.as_bytes(), true)
    }

    /// Dynamic programming over (token, byte): `at[j]` is whether the tokens
    /// so far can consume the first `j` bytes.
    fn run(&self, s: &[u8], subject_is_pattern: bool) -> bool {
        let wild = |c: u8| subject_is_pattern && (c == b'*' || c == b'?');
        let mut at = vec![false; s.len() + 1];
        at[0] = true;
        for (ti, t) in self.tokens.iter().enumerate() {
            let mut next = vec![false; s.len() + 1];
            match t {
                Token::Byte(c) => {
                    for j in 0..s.len() {
                        if at[j] && s[j] == *c && !wild(s[j]) {
                            next[j + 1] = true;
                        }
                    }
                }
                Token::Star => {
                    let mut reach = false;
                    for j in 0..=s.len() {
                        reach = at[j] || (reach && j > 0 && s[j - 1] != b'/');
                        next[j] = reach;
                    }
                }
                Token::Stars => {
                    let mut reach = false;
                    for j in 0..=s.len() {
                        reach = reach || at[j];
                        next[j] = reach;
                    }
                }
            }
            // A `/` right after `**` is optional (`a/**/b` matches `a/b`).
            if *t == Token::Byte(b'/') && ti > 0 && self.tokens[ti - 1] == Token::Stars {
                for j in 0..=s.len() {
                    next[j] = next[j] || at[j];
                }
            }
            at = next;
        }
        at[s.len()]
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn a_star_stays_in_its_segment_and_two_cross_them() {
        let g = Glob::new("/web/*");
        assert!(g.matches("/web/db") && g.matches("/web/"));
        assert!(!g.matches("/web/a/b") && !g.matches("/webx/db") && !g.matches("/payments/db"));
        let g = Glob::new("teams/web/**");
        assert!(g.matches("teams/web/a.yaml") && g.matches("teams/web/x/y/z.yml"));
        assert!(!g.matches("teams/webx/a.yaml") && !g.matches("teams/api/a.yaml"));
        let g = Glob::new("teams/**/svc.yaml");
        assert!(g.matches("teams/svc.yaml") && g.matches("teams/a/b/svc.yaml") && !g.matches("teams/a/other.yaml"));
        assert!(Glob::new("web-*").matches("web-api") && !Glob::new("web-*").matches("api-web"));
        assert!(Glob::new("exact").matches("exact") && !Glob::new("exact").matches("exactly"));
        assert!(Glob::new("**").matches("") && Glob::new("**").matches("a/b/c"));
    }

    #[test]
    fn cover_means_every_string_the_iam_pattern_stands_for() {
        // The allow pattern's `*` takes in the statement's `*`.
        assert!(Glob::new("s3:Get*").covers("s3:Get*", true));
        assert!(Glob::new("s3:*").covers("s3:GetObject*", true));
        assert!(Glob::new("s3:getobject").covers("s3:GetObject", true));
        // A literal never takes in a wildcard: `s3:Get*` is more than `s3:GetObject`.
        assert!(!Glob::new("s3:GetObject").covers("s3:Get*", true));
        assert!(!Glob::new("s3:Get?").covers("s3:Get*", true));
        // Resources: one segment, or all of them.
        assert!(Glob::new("arn:aws:s3:::web-*").covers("arn:aws:s3:::web-assets", false));
        assert!(!Glob::new("arn:aws:s3:::web-*").covers("arn:aws:s3:::web-assets/*", false));
        assert!(Glob::new("arn:aws:s3:::web-*/**").covers("arn:aws:s3:::web-assets/*", false));
        assert!(!Glob::new("arn:aws:s3:::web-*").covers("*", false));
        assert!(!Glob::new("arn:aws:s3:::Web-*").covers("arn:aws:s3:::web-a", false));
    }
}
