//! Validating what a Parameter or Secret declares: its initial value, KMS
//! key, description and tags.

use super::*;

pub(super) fn initial_value(cx: &mut Ctx, iv: Spanned<schema::InitialValue>, max_len: u32) -> Option<InitialValue> {
    let loc = iv.referenced;
    let gen_ok = |cx: &mut Ctx, g: &schema::GenerateSpec| {
        if g.length == 0 || g.length > max_len {
            cx.err(loc, format!("generate.length must be between 1 and {max_len}"));
            return false;
        }
        if g.exclude_lowercase && g.exclude_uppercase && g.exclude_numbers && g.exclude_punctuation {
            cx.err(loc, "generate excludes every character class");
            return false;
        }
        true
    };
    match iv.value {
        schema::InitialValue::Generate(g) => gen_ok(cx, &g).then_some(InitialValue::Generate(g)),
        schema::InitialValue::FromEnv(var) => {
            let valid = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                cx.err(loc, format!("fromEnv: `{var}` is not an environment variable name"));
                return None;
            }
            Some(InitialValue::FromEnv(var))
        }
        schema::InitialValue::Json(fields) => {
            if fields.is_empty() {
                cx.err(loc, "a JSON initialValue needs at least one key");
                return None;
            }
            let mut out = BTreeMap::new();
            for (k, f) in fields {
                let f = match f {
                    schema::JsonField::Generated { generate } => {
                        if !gen_ok(cx, &generate) {
                            return None;
                        }
                        JsonField::Generate(generate)
                    }
                    schema::JsonField::Literal(s) => JsonField::Literal(match s {
                        schema::JsonScalar::Bool(b) => b.into(),
                        schema::JsonScalar::Int(i) => i.into(),
                        schema::JsonScalar::Float(f) => f.into(),
                        schema::JsonScalar::Text(t) => t.into(),
                    }),
                };
                out.insert(k, f);
            }
            Some(InitialValue::Json(out))
        }
    }
}

pub(super) fn check_kms(cx: &mut Ctx, key: &Option<Spanned<String>>) {
    let Some(k) = key else { return };
    let v = k.value.as_str();
    let uuid = |s: &str| {
        let s = s.strip_prefix("mrk-").unwrap_or(s);
        s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    };
    let ok = if let Some(alias) = v.strip_prefix("alias/") {
        !alias.is_empty()
            && !alias.starts_with("aws/")
            && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    } else if let Some(a) = crate::arn::Arn::parse(v) {
        a.service == "kms" && (a.resource.starts_with("key/") || a.resource.starts_with("alias/"))
    } else {
        uuid(v)
    };
    if !ok {
        cx.err(k.referenced, format!("kmsKeyId `{v}` is not a customer managed key id, ARN or alias (alias/aws/* are AWS managed: leave kmsKeyId out)"));
    }
}

pub(super) fn check_description(cx: &mut Ctx, d: &Option<Spanned<String>>, max: usize) {
    if let Some(d) = d
        && d.value.chars().count() > max
    {
        cx.err(d.referenced, format!("description is longer than {max} characters"));
    }
}

pub(super) fn check_tags(cx: &mut Ctx, name: &Spanned<String>, tags: &BTreeMap<String, String>) {
    for (k, v) in tags {
        if k.starts_with("secretwire.dev/") || k.to_ascii_lowercase().starts_with("aws:") {
            cx.err(name.referenced, format!("tag `{k}` is reserved"));
        }
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            cx.err(name.referenced, format!("tag `{k}`: keys are 1-128 characters, values at most 256"));
        }
    }
}
