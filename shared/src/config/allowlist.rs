//! `ARCHGATE_GATE_ALLOWLIST`: the findings the gate accepts until a date.

use super::{ConfigError, GATE_ALLOWLIST};
use crate::domain::gate::AllowEntry;

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
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not a JSON array: {e}")))?;
    let mut allowlist = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
        };
        let named = field("id").unwrap_or("?");
        let entry_error = |problem: &str| invalid(format!("entry {index} ({named}): {problem}"));
        let id = field("id")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| entry_error("`id` is missing"))?;
        let expires =
            field("expires").ok_or_else(|| entry_error("`expires` (YYYY-MM-DD) is missing"))?;
        if !is_iso_date(expires) {
            return Err(entry_error(&format!(
                "`expires` {expires:?} is not a YYYY-MM-DD date"
            )));
        }
        let reason = field("reason")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| entry_error("`reason` is missing: say why the finding is accepted"))?;
        allowlist.push(AllowEntry {
            id: id.to_owned(),
            expires: expires.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(allowlist)
}

fn is_iso_date(value: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    value.len() == 10 && time::Date::parse(value, &format).is_ok()
}
