//! The name rules AWS enforces, checked before any call: secret and
//! parameter names, ECS names, clusters, IAM role names.

pub fn check_secret_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 512 {
        return Err(format!("secret name `{n}` must be 1 to 512 characters"));
    }
    if let Some(c) = n.chars().find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c))) {
        return Err(format!("secret name `{n}` contains `{c}`; allowed are ASCII letters, digits and /_+=.@-"));
    }
    Ok(())
}

pub fn check_parameter_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 1011 {
        return Err(format!("parameter name `{n}` must be 1 to 1011 characters"));
    }
    if let Some(c) = n.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c))) {
        return Err(format!("parameter name `{n}` contains `{c}`; allowed are ASCII letters, digits and _.-/"));
    }
    if n.contains('/') && !n.starts_with('/') {
        return Err(format!("parameter name `{n}` has a hierarchy, so it must start with `/`"));
    }
    if n.contains("//") || (n.len() > 1 && n.ends_with('/')) || n == "/" {
        return Err(format!("parameter name `{n}` has an empty path segment"));
    }
    let first = n.trim_start_matches('/').to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!("parameter name `{n}` must not begin with `aws` or `ssm` (reserved)"));
    }
    if n.split('/').filter(|s| !s.is_empty()).count() > 15 {
        return Err(format!("parameter name `{n}` has more than 15 levels"));
    }
    Ok(())
}

pub fn check_ecs_name(what: &str, n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 255 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("{what} `{n}` must be 1 to 255 ASCII letters, digits, `-` or `_`"));
    }
    Ok(())
}

pub(super) fn check_cluster(n: &str) -> Result<(), String> {
    if let Some(a) = crate::arn::Arn::parse(n) {
        if a.service == "ecs" && a.resource.starts_with("cluster/") {
            return Ok(());
        }
        return Err(format!("cluster `{n}` is not an ECS cluster ARN"));
    }
    check_ecs_name("cluster", n)
}

pub fn check_role_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) {
        return Err(format!("role name `{n}` must be 1 to 64 ASCII letters, digits or +=,.@_-"));
    }
    Ok(())
}
