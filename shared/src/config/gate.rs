//! The scan gate's variables: a limit per severity, what a failed scan means, the allowlist.

use super::{allowlist, ConfigError, Problems, GATE_ALLOWLIST, GATE_MAX, GATE_ON_SCAN_FAILURE};
use crate::domain::gate::{OnScanFailure, Policy, Severity};

/// The policy the variables give; an unset variable keeps [`Policy::default`]'s value. Every
/// problem is kept in `problems` (one call names them all); `None` when there was one.
pub(super) fn policy(
    lookup: &impl Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Policy> {
    let before = problems.0.len();
    let mut policy = Policy::default();
    for (severity, variable) in Severity::ALL.into_iter().zip(GATE_MAX) {
        let Some(value) = lookup(variable).map(|v| v.trim().to_owned()) else {
            continue;
        };
        let limit =
            match value.as_str() {
                "" | "unlimited" => Some(None),
                number => problems.take(number.parse::<u64>().map(Some).map_err(|_| {
                    ConfigError::Invalid {
                        variable,
                        value: value.clone(),
                        reason: "expected a count (0 or more) or `unlimited`".to_owned(),
                    }
                })),
            };
        if let Some(limit) = limit {
            policy.max.insert(severity, limit);
        }
    }
    match lookup(GATE_ON_SCAN_FAILURE)
        .map(|v| v.trim().to_owned())
        .as_deref()
    {
        None | Some("") | Some("block") => policy.on_scan_failure = OnScanFailure::Block,
        Some("pass") => policy.on_scan_failure = OnScanFailure::Pass,
        Some(other) => problems.0.push(ConfigError::Invalid {
            variable: GATE_ON_SCAN_FAILURE,
            value: other.to_owned(),
            reason: "expected `block` or `pass`".to_owned(),
        }),
    }
    if let Some(value) = lookup(GATE_ALLOWLIST)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        if let Some(allowlist) = problems.take(allowlist::parse(&value)) {
            policy.allowlist = allowlist;
        }
    }
    (problems.0.len() == before).then_some(policy)
}

/// The variables that give `policy` back.
pub(super) fn to_env(policy: &Policy) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    for (severity, variable) in Severity::ALL.into_iter().zip(GATE_MAX) {
        let limit = policy.max.get(&severity).copied().flatten();
        vars.push((
            variable,
            limit.map_or_else(|| "unlimited".to_owned(), |l| l.to_string()),
        ));
    }
    vars.push((
        GATE_ALLOWLIST,
        serde_json::to_string(&policy.allowlist).expect("allowlist serialises"),
    ));
    vars.push((
        GATE_ON_SCAN_FAILURE,
        match policy.on_scan_failure {
            OnScanFailure::Block => "block".to_owned(),
            OnScanFailure::Pass => "pass".to_owned(),
        },
    ));
    vars
}
