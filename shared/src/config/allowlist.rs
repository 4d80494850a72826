//! `ARCHGATE_GATE_ALLOWLIST`: the findings the gate accepts until a date.

use super::{ConfigError, GATE_ALLOWLIST};
use crate::domain::gate::{AllowEntry, DATE_FORMAT};
use serde::Deserialize;
use time::Date;

/// An entry as written. The fields are optional here and checked one by one, so that a
/// problem names the entry and the field.
#[derive(Deserialize)]
struct Listed {
    id: Option<String>,
    expires: Option<String>,
    reason: Option<String>,
}

/// A JSON array of `{"id", "expires": "YYYY-MM-DD", "reason"}`, or the path of a file holding
/// one.
pub(super) fn parse(value: &str) -> Result<Vec<AllowEntry>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        variable: GATE_ALLOWLIST,
        value: value.chars().take(100).collect(),
        reason,
    };
    let text = if value.starts_with('[') {
        value.to_owned()
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| invalid(format!("not a JSON array, and not a readable file: {e}")))?
    };
    // Entries are read one at a time, so that an entry of the wrong shape is named by its
    // index rather than failing the array as a whole.
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not a JSON array: {e}")))?;
    let mut allowlist = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let listed =
            Listed::deserialize(entry).map_err(|e| invalid(format!("entry {index}: {e}")))?;
        let [id, expires, reason] =
            [&listed.id, &listed.expires, &listed.reason].map(|v| v.as_deref().map(str::trim));
        let named = id.unwrap_or("?");
        let entry_error = |problem: &str| invalid(format!("entry {index} ({named}): {problem}"));
        let id = id
            .filter(|v| !v.is_empty())
            .ok_or_else(|| entry_error("`id` is missing"))?;
        let expires = expires.ok_or_else(|| entry_error("`expires` (YYYY-MM-DD) is missing"))?;
        let expires = iso_date(expires).ok_or_else(|| {
            entry_error(&format!("`expires` {expires:?} is not a YYYY-MM-DD date"))
        })?;
        let reason = reason
            .filter(|v| !v.is_empty())
            .ok_or_else(|| entry_error("`reason` is missing: say why the finding is accepted"))?;
        allowlist.push(AllowEntry {
            id: id.to_owned(),
            expires,
            reason: reason.to_owned(),
        });
    }
    Ok(allowlist)
}

/// Exactly `YYYY-MM-DD`: the year component also accepts a sign, which the length excludes.
fn iso_date(value: &str) -> Option<Date> {
    if value.len() != 10 {
        return None;
    }
    Date::parse(value, DATE_FORMAT).ok()
}
