//! What one delivery did: applied (with the effects performed) or ignored, and why.

use crate::domain::{Effect, IgnoreReason, Phase};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Applied {
        release: String,
        phase: Phase,
        /// Answered as what each effect did, for people (`"start amd64 build"`).
        #[serde(serialize_with = "described")]
        effects: Vec<Effect>,
    },
    /// Answered as `{"status": "ignored", "kind": ..., "reason": ...}`.
    Ignored {
        #[serde(flatten)]
        reason: IgnoreReason,
    },
}

impl Outcome {
    pub fn ignored(reason: IgnoreReason) -> Self {
        Outcome::Ignored { reason }
    }
}

impl Outcome {
    /// One outcome for several releases: the single one as it is, else `applied` when any
    /// applied (listing each), else the ignored reasons joined.
    pub fn combine(mut outcomes: Vec<Outcome>) -> Outcome {
        if outcomes.len() == 1 {
            return outcomes.remove(0);
        }
        let applied: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Applied { .. }))
            .collect();
        match applied.first() {
            Some(Outcome::Applied { phase, .. }) => Outcome::Applied {
                release: applied
                    .iter()
                    .filter_map(|o| match o {
                        Outcome::Applied { release, .. } => Some(release.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                phase: *phase,
                effects: applied
                    .iter()
                    .flat_map(|o| match o {
                        Outcome::Applied { effects, .. } => effects.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
            },
            _ => Outcome::ignored(IgnoreReason::Several(
                outcomes
                    .into_iter()
                    .filter_map(|o| match o {
                        Outcome::Ignored { reason } => Some(reason),
                        Outcome::Applied { .. } => None,
                    })
                    .collect(),
            )),
        }
    }
}

fn described<S: Serializer>(effects: &[Effect], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(effects.iter().map(Effect::to_string))
}

impl From<IgnoreReason> for Outcome {
    fn from(reason: IgnoreReason) -> Self {
        Outcome::ignored(reason)
    }
}
