//! Rules 11 and 12: an attempt's builds are its own; every release comes to rest.

use super::{violation, Checker, Rule, Violation};
use crate::scenario::MINUTE;
use crate::world::{at_rest, World, RECONCILE_EVERY};
use archgate::domain::release::{GateState, CLAIM_LEASE_MS};
use archgate::domain::{BuildRole, Effect, Millis, Phase, Release};
use std::rc::Rc;

/// What a pass may take beyond its schedule: the event it runs on, its own calls.
const SLACK: Millis = 5 * MINUTE;
/// While the world still makes trouble, reconciler passes may fail at random too.
const SLACK_IN_TROUBLE: Millis = 60 * MINUTE;

impl Checker {
    pub(super) fn check_rest(
        &mut self,
        world: &World,
        releases: &[Rc<Release>],
    ) -> Result<(), Violation> {
        let now = world.now();
        let deadline = world.policy.deadline_ms;
        for release in releases {
            let tag = release.key.to_string();
            // 11: every build the release records was started for its current attempt (from
            // the upload that started it), never an earlier attempt's.
            for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
                let Some(id) = &release.build(role).build_id else {
                    continue;
                };
                let Some(build) = world.svc.builds.get(id) else {
                    continue;
                };
                if build.request.source_version != release.source.version_id {
                    violation(
                        Rule::OwnBuilds,
                        format!(
                            "{tag} attempt {} (upload {}) records {role} build {id}, started for upload {}",
                            release.attempt,
                            release.source.revision(),
                            build.request.source_version.as_deref().unwrap_or("?")
                        ),
                    )?;
                }
            }
            // 12: a release whose gate passed and whose signing or promotion keeps failing
            // past its deadline is announced (`Release Stalled`), never left silent.
            let owes_promotion = release.phase() == Phase::CandidateReady
                && release.gate() == GateState::Passed
                && release
                    .required_effects()
                    .iter()
                    .any(|e| matches!(e, Effect::Attest | Effect::Promote));
            let key = (release.key.clone(), release.attempt);
            if !owes_promotion {
                self.owed_since.remove(&key);
            } else {
                let since = *self.owed_since.entry(key.clone()).or_insert(now);
                // Past the deadline the next pass that runs announces it. While the faults
                // last a pass may crash; once they stop, the first pass after both the
                // deadline and the last fault must (a pass that crashed as the window closed
                // was still a fault).
                let bound = match world.faults_closed_at {
                    Some(closed) => (since + deadline).max(closed) + RECONCILE_EVERY + SLACK,
                    None => since + deadline + RECONCILE_EVERY + SLACK_IN_TROUBLE,
                };
                let announced = self.keys_by_kind.contains_key(&(
                    release.key.repository.clone(),
                    release.key.tag.to_string(),
                    release.attempt,
                    "Release Stalled".to_owned(),
                ));
                if now > bound && !announced {
                    violation(
                        Rule::ComesToRest,
                        format!(
                            "{tag} attempt {} passed its gate and has owed its signing or promotion for {} minutes without a Release Stalled",
                            release.attempt,
                            (now - since) / MINUTE
                        ),
                    )?;
                }
            }
            // 12: once the faults stop, every release rests by its deadline plus one
            // reconciler pass (a claim a crash left runs out first).
            let id = release.key.id();
            if at_rest(release) {
                self.unsettled_since.remove(&id);
                continue;
            }
            let unsettled_since = *self.unsettled_since.entry(id).or_insert(now);
            if let Some(closed) = world.faults_closed_at {
                let bound = (closed.max(unsettled_since) + CLAIM_LEASE_MS + RECONCILE_EVERY)
                    .max(release.started_at() + deadline + RECONCILE_EVERY)
                    + SLACK;
                if now > bound {
                    violation(
                        Rule::ComesToRest,
                        format!(
                            "{tag} attempt {} is {} {} minutes past its bound (faults stopped {} minutes ago), claims {:?}, owing {:?}, queued {:?}",
                            release.attempt,
                            release.phase(),
                            (now - bound) / MINUTE,
                            (now - closed) / MINUTE,
                            release.pending.iter().map(|c| c.effect).collect::<Vec<_>>(),
                            release.required_effects(),
                            release.queued.as_ref().map(|q| q.revision())
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }
}
