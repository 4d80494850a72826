//! What a release is owed and cannot get: the last error of each owed effect that keeps
//! failing, the deadline that ends the wait (DESIGN.md rule 12), and the stall of a release
//! whose gate passed (it is never failed: it is announced and published once the fault clears).

use super::*;
use crate::domain::Millis;
use serde::{Deserialize, Serialize};

/// An error kept for people is cut to this many characters (bounded records, rule 10).
const MAX_ERROR_CHARS: usize = 400;

/// An owed effect that failed: the last error, since when it has been failing, how often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trouble {
    pub effect: Effect,
    /// The last error, as the function logged it (`Archgate.…` type and message).
    pub error_type: String,
    pub error: String,
    /// The first failure of this effect since it was last performed.
    pub since: Millis,
    pub last_at: Millis,
    pub tries: u32,
}

/// A release whose gate passed and whose signing or promotion kept failing past its
/// deadline: announced once (`Release Stalled`), published once the fault clears.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    pub at: Millis,
    pub reason: String,
}

/// What the deadline does to a release that is still waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overdue {
    /// Why, with the last error of what it is owed: the `Release Failed` (or `Release
    /// Stalled`) reason.
    pub reason: String,
}

impl Release {
    /// Records that an owed effect failed (the claim is given back separately).
    pub fn record_failure(&mut self, effect: Effect, error_type: &str, error: &str, now: Millis) {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        match self.troubles.iter_mut().find(|t| t.effect == effect) {
            Some(trouble) => {
                trouble.error_type = error_type.to_owned();
                trouble.error = error;
                trouble.last_at = now;
                trouble.tries = trouble.tries.saturating_add(1);
            }
            None => self.troubles.push(Trouble {
                effect,
                error_type: error_type.to_owned(),
                error,
                since: now,
                last_at: now,
                tries: 1,
            }),
        }
    }

    /// The trouble of the owed effect that has been failing longest, if any.
    pub fn worst_trouble(&self) -> Option<&Trouble> {
        self.troubles.iter().min_by_key(|t| (t.since, t.effect))
    }

    /// Whether the gate passed and the release now owes its signing or its promotion: a
    /// release in that state is never failed (its promotion may already have put the tag).
    pub fn owes_promotion(&self) -> bool {
        self.required_effects()
            .iter()
            .any(|e| matches!(e, Effect::Attest | Effect::Promote))
    }

    /// Whether the release has waited past its deadline, and what to say. Before its gate
    /// passed the wait counts from the attempt's start; after, from the first failure of its
    /// signing or promotion (an effect owed after weeks of rest, a blocked release
    /// re-evaluated, counts from when it became owed). `None`: not overdue, or at rest.
    pub fn overdue(&self, now: Millis, deadline_ms: Millis) -> Option<Overdue> {
        let phase = self.phase();
        if !phase.is_in_flight() {
            return None;
        }
        let hours = deadline_ms / 3_600_000;
        if self.owes_promotion() {
            let trouble = self
                .troubles
                .iter()
                .filter(|t| matches!(t.effect, Effect::Attest | Effect::Promote))
                .min_by_key(|t| t.since)?;
            if now.saturating_sub(trouble.since) <= deadline_ms {
                return None;
            }
            return Some(Overdue {
                reason: format!(
                    "attempt {} passed its gate, and for more than {hours} hours it could not {}: {}",
                    self.attempt,
                    trouble.effect,
                    describe(trouble)
                ),
            });
        }
        if now.saturating_sub(self.started_at()) <= deadline_ms {
            return None;
        }
        let waiting = match (phase, self.gate()) {
            (Phase::Building, _) => "its builds never finished",
            (Phase::Assembling, _) => "its image index was never assembled",
            (_, GateState::Waiting) => "its per-arch images were never scanned",
            _ => "it never reached a final state",
        };
        let mut reason = format!(
            "no final state {hours} hours after attempt {} started: {waiting}",
            self.attempt
        );
        if let Some(trouble) = self.worst_trouble() {
            reason.push_str(&format!(
                "; {} kept failing: {}",
                trouble.effect,
                describe(trouble)
            ));
        }
        Some(Overdue { reason })
    }
}

/// `14 tries since 2026-03-14T09:41:02Z, the last: <error>`.
pub fn describe(trouble: &Trouble) -> String {
    format!(
        "{} {} since {}, the last: {}",
        trouble.tries,
        if trouble.tries == 1 { "try" } else { "tries" },
        crate::domain::rfc3339(trouble.since),
        trouble.error
    )
}
