//! Values that become secrets. They exist in memory only between being made
//! (generated or read from the controller's environment) and being sent in a
//! create call. [`SecretValue`] redacts itself in `Debug` and `Display`, so a
//! stray `{:?}` cannot print one.

use std::collections::BTreeMap;
use std::fmt;

/// How a value is generated (`initialValue.generate`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateSpec {
    #[serde(default = "default_length")]
    pub length: u32,
    #[serde(default)]
    pub exclude_punctuation: bool,
    #[serde(default)]
    pub exclude_numbers: bool,
    #[serde(default)]
    pub exclude_uppercase: bool,
    #[serde(default)]
    pub exclude_lowercase: bool,
    #[serde(default)]
    pub exclude_characters: String,
}

fn default_length() -> u32 {
    32
}

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The only way to get at the text: named so that every use stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(** redacted **)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// How a missing value is made (the validated form of the manifest's `initialValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum InitialValue {
    Generate(GenerateSpec),
    FromEnv(String),
    Json(BTreeMap<String, JsonField>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonField {
    Literal(serde_json::Value),
    Generate(GenerateSpec),
}

impl PartialEq for GenerateSpec {
    fn eq(&self, o: &Self) -> bool {
        (self.length, self.exclude_punctuation, self.exclude_numbers, self.exclude_uppercase, self.exclude_lowercase)
            == (o.length, o.exclude_punctuation, o.exclude_numbers, o.exclude_uppercase, o.exclude_lowercase)
            && self.exclude_characters == o.exclude_characters
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("environment variable `{0}` is not set (or not UTF-8) in the controller's environment")]
    MissingEnv(String),
    #[error("environment variable `{0}` is empty")]
    EmptyEnv(String),
    #[error("the generator's character set is empty after the exclusions")]
    EmptyAlphabet,
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

impl GenerateSpec {
    fn alphabet(&self) -> Vec<char> {
        let mut sets: Vec<&str> = Vec::new();
        if !self.exclude_lowercase {
            sets.push("abcdefghijklmnopqrstuvwxyz");
        }
        if !self.exclude_uppercase {
            sets.push("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        }
        if !self.exclude_numbers {
            sets.push("0123456789");
        }
        if !self.exclude_punctuation {
            sets.push(PUNCTUATION);
        }
        sets.iter().flat_map(|s| s.chars()).filter(|c| !self.exclude_characters.contains(*c)).collect()
    }

    /// A uniformly random string from the OS CSPRNG (rejection sampling, no modulo bias).
    pub fn generate(&self) -> Result<SecretValue, ValueError> {
        let alphabet = self.alphabet();
        if alphabet.is_empty() {
            return Err(ValueError::EmptyAlphabet);
        }
        let n = alphabet.len();
        let limit = 256 - (256 % n);
        let mut out = String::with_capacity(self.length as usize);
        let mut buf = [0u8; 64];
        while out.len() < self.length as usize {
            getrandom::fill(&mut buf).map_err(|e| ValueError::Random(e.to_string()))?;
            for b in buf {
                if (b as usize) < limit && out.chars().count() < self.length as usize {
                    out.push(alphabet[b as usize % n]);
                }
            }
        }
        Ok(SecretValue(out))
    }
}

impl InitialValue {
    /// Makes the value. `env` is the controller's environment lookup.
    pub fn make(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<SecretValue, ValueError> {
        match self {
            InitialValue::Generate(g) => g.generate(),
            InitialValue::FromEnv(var) => match env(var) {
                None => Err(ValueError::MissingEnv(var.clone())),
                Some(v) if v.is_empty() => Err(ValueError::EmptyEnv(var.clone())),
                Some(v) => Ok(SecretValue(v)),
            },
            InitialValue::Json(fields) => {
                let mut obj = serde_json::Map::new();
                for (k, f) in fields {
                    let v = match f {
                        JsonField::Literal(v) => v.clone(),
                        JsonField::Generate(g) => serde_json::Value::String(g.generate()?.0),
                    };
                    obj.insert(k.clone(), v);
                }
                Ok(SecretValue(serde_json::Value::Object(obj).to_string()))
            }
        }
    }

    /// What the plan may say about a value without revealing it.
    pub fn describe(&self) -> String {
        match self {
            InitialValue::Generate(g) => format!("generated, {} characters", g.length),
            InitialValue::FromEnv(var) => format!("from environment variable {var}"),
            InitialValue::Json(fields) => {
                format!("JSON with keys {}", fields.keys().cloned().collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// A random request token (32 hex digits): what makes a retried
/// non-idempotent request the same request (`ClientRequestToken`).
pub fn random_token() -> Result<String, ValueError> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| ValueError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(length: u32) -> GenerateSpec {
        GenerateSpec {
            length,
            exclude_punctuation: false,
            exclude_numbers: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            exclude_characters: String::new(),
        }
    }

    #[test]
    fn secret_values_redact_in_debug_and_display() {
        let v = SecretValue::new("hunter2-very-secret".into());
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(!format!("{v}").contains("hunter2"));
        assert_eq!(v.expose(), "hunter2-very-secret");
    }

    #[test]
    fn generated_values_respect_length_and_exclusions() {
        let g = GenerateSpec { exclude_punctuation: true, exclude_characters: "abc".into(), ..spec(40) };
        let a = g.generate().unwrap();
        let b = g.generate().unwrap();
        assert_eq!(a.expose().chars().count(), 40);
        assert_ne!(a, b, "two generated values must differ");
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric() && !"abc".contains(c)));
        let none = GenerateSpec {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..spec(8)
        };
        assert_eq!(none.generate(), Err(ValueError::EmptyAlphabet));
    }

    #[test]
    fn env_and_json_values() {
        let env = |k: &str| (k == "TOKEN").then(|| "tok-123".to_string());
        assert_eq!(InitialValue::FromEnv("TOKEN".into()).make(&env).unwrap().expose(), "tok-123");
        assert_eq!(InitialValue::FromEnv("NOPE".into()).make(&env), Err(ValueError::MissingEnv("NOPE".into())));
        let mut fields = BTreeMap::new();
        fields.insert("username".into(), JsonField::Literal("app".into()));
        fields.insert("password".into(), JsonField::Generate(spec(12)));
        let v = InitialValue::Json(fields.clone()).make(&env).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(v.expose()).unwrap();
        assert_eq!(parsed["username"], "app");
        assert_eq!(parsed["password"].as_str().unwrap().len(), 12);
        assert_eq!(InitialValue::Json(fields).describe(), "JSON with keys password, username");
    }
}
