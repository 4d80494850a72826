//! The rules AWS sets for the names configuration gives: each returns why a value is not a
//! valid name, for [`super::ConfigError::Invalid`].

pub(super) fn bucket_name(value: &str) -> Result<(), String> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&value.len()) && ok_chars && ends_ok {
        Ok(())
    } else {
        Err("an S3 bucket name is 3-63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit".into())
    }
}

pub(super) fn key_prefix(value: &str) -> Result<(), String> {
    if value.len() > 512 || value.starts_with('/') || value.chars().any(char::is_control) {
        Err("a key prefix has no leading `/`, no control characters and at most 512 bytes".into())
    } else {
        Ok(())
    }
}

/// ECR's repository names ([`crate::domain::repository::check_repository_name`]).
pub fn repository_name(value: &str) -> Result<(), String> {
    crate::domain::repository::check_repository_name(value).map_err(str::to_owned)
}

/// A repository namespace ([`crate::domain::repository::check_namespace`]).
pub fn repository_namespace(value: &str) -> Result<(), String> {
    crate::domain::repository::check_namespace(value).map_err(str::to_owned)
}

pub(super) fn project_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    if (2..=255).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        Ok(())
    } else {
        Err("a CodeBuild project name is 2-255 letters, digits, `-` and `_`, starting with a letter or digit".into())
    }
}

pub(super) fn table_name(value: &str) -> Result<(), String> {
    if (3..=255).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(())
    } else {
        Err("a DynamoDB table name is 3-255 letters, digits, `_`, `.` and `-`".into())
    }
}

pub(super) fn event_bus_name(value: &str) -> Result<(), String> {
    let name_ok = (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'));
    if name_ok || value.starts_with("arn:aws") {
        Ok(())
    } else {
        Err("an event bus is a name of letters, digits, `/`, `.`, `-` and `_`, or an ARN".into())
    }
}

pub(super) fn account_id(value: &str) -> Result<(), String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("an AWS account id is 12 digits".into())
    }
}

/// A KMS key as Sign takes it: a key id, a key ARN, an alias name or an alias ARN.
pub(super) fn kms_key(value: &str) -> Result<(), String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/:".contains(&b))
    };
    let shaped = value.starts_with("alias/")
        || (value.starts_with("arn:aws") && value.contains(":kms:"))
        || value.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if value.len() <= 2048 && plain(value) && shaped {
        Ok(())
    } else {
        Err("a KMS key is a key id, a key ARN (arn:aws:kms:<region>:<account>:key/<id>) or an alias (alias/<name>)".into())
    }
}

pub(super) fn region(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err("a region looks like eu-west-1".into())
    }
}
