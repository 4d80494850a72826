//! What a release still owes: the effects its state calls for, their claims, and the
//! results that satisfy them.

use super::*;
use crate::domain::Millis;

impl Release {
    /// Whether an effect the release needs has no live claim at `now`: nobody is doing it, so
    /// the next delivery (or the reconciler's nudge) must.
    pub fn has_unclaimed_work(&self, now: Millis) -> bool {
        self.required_effects().into_iter().any(|effect| {
            self.pending
                .iter()
                .find(|c| c.effect == effect)
                .is_none_or(|c| now.saturating_sub(c.claimed_at) >= CLAIM_LEASE_MS)
        })
    }

    /// Gives back the claims on `effects` (they failed or were never tried), so the next
    /// delivery can take them at once instead of waiting out the lease. A promotion's claim
    /// stays, expired: its PutImage may have happened, so it runs to the end whatever
    /// verdict arrives meanwhile.
    pub fn release_claims(&mut self, effects: &[Effect]) {
        self.pending.retain_mut(|claim| {
            if !effects.contains(&claim.effect) {
                return true;
            }
            if claim.effect == Effect::Promote {
                claim.claimed_at = Millis::MIN / 2;
                claim.by = None;
                return true;
            }
            false
        });
    }

    /// Leaves `effect` to others: its claim goes back to what `before` recorded (none, or
    /// another invocation's), so a function never claims work its role cannot perform.
    pub fn leave_to_others(&mut self, before: Option<&Release>, effect: Effect) {
        self.pending.retain(|c| c.effect != effect);
        if let Some(claim) = before.and_then(|b| b.pending.iter().find(|c| c.effect == effect)) {
            self.pending.push(claim.clone());
        }
    }

    /// Effects the recorded state still calls for and that no recorded result has satisfied.
    pub fn required_effects(&self) -> Vec<Effect> {
        let mut effects: Vec<Effect> = self
            .notices
            .iter()
            .filter(|n| !n.announced)
            .map(|n| Effect::Announce(n.seq))
            .collect();
        let phase = self.phase();
        if phase == Phase::Rejected {
            return effects;
        }
        if phase == Phase::Expired {
            if !self.emitted.contains(&EventKind::Expired) {
                effects.push(Effect::Emit(EventKind::Expired));
            }
            return effects;
        }
        for arch in Arch::ALL {
            let role = BuildRole::arch(arch);
            if phase != Phase::Failed && self.build(role).build_id.is_none() {
                effects.push(Effect::StartBuild(role));
            }
        }
        if Arch::ALL
            .iter()
            .all(|a| self.build(BuildRole::arch(*a)).build_id.is_some())
        {
            effects.push(Effect::Emit(EventKind::Started));
        }
        // A promotion once claimed runs to the end: its PutImage may already have happened, so
        // a blocking verdict that arrives meanwhile neither cancels it nor announces a block.
        let promoting = self.pending.iter().any(|c| c.effect == Effect::Promote);
        match phase {
            Phase::Building | Phase::Rejected | Phase::Expired => {}
            Phase::Blocked => {
                if promoting {
                    effects.push(Effect::Promote);
                }
            }
            Phase::CandidateReady => {
                // Signed first, and recorded: the promotion pushes what was recorded, so a
                // repeated promotion attaches the same envelopes (ECDSA is randomised).
                if self.gate() == GateState::Passed {
                    if self.attestations.is_empty() && !promoting {
                        effects.push(Effect::Attest);
                    } else {
                        effects.push(Effect::Promote);
                    }
                }
            }
            Phase::Published => effects.push(Effect::Emit(EventKind::Published)),
            Phase::Assembling => match self.manifest_mode {
                ManifestMode::Native => effects.push(Effect::AssembleCandidate),
                ManifestMode::Codebuild => match self.manifest.final_status() {
                    None if self.manifest.build_id.is_none() => {
                        effects.push(Effect::StartBuild(BuildRole::Manifest))
                    }
                    Some(BuildStatus::Succeeded) => effects.push(Effect::ResolveCandidate),
                    _ => {}
                },
            },
            Phase::Failed => {
                for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
                    let build = self.build(role);
                    if build.build_id.is_some()
                        && build.final_status().is_none()
                        && !build.stop_requested
                    {
                        effects.push(Effect::StopBuild(role));
                    }
                }
                effects.push(Effect::Emit(EventKind::Failed));
            }
        }
        if self.candidate.is_some() && phase != Phase::Failed {
            effects.push(Effect::Emit(EventKind::CandidateReady));
        }
        if self.stalled.is_some() {
            effects.push(Effect::Emit(EventKind::Stalled));
        }
        if phase == Phase::Blocked && !promoting {
            effects.push(Effect::Emit(EventKind::Blocked));
        }
        effects.retain(|e| match e {
            Effect::Emit(kind) => !self.emitted.contains(kind),
            _ => true,
        });
        effects
    }
}

pub(super) fn record_result(release: &mut Release, result: &EffectResult, now: Millis) {
    match result {
        EffectResult::BuildStarted { role, build_id } => {
            let build = release.build_mut(*role);
            if build.build_id.is_none() {
                build.build_id = Some(build_id.clone());
                build.started_at = Some(now);
                release.note(now, format!("{role} build started: {build_id}"));
            }
        }
        EffectResult::BuildStopped { role } => {
            let build = release.build_mut(*role);
            if !build.stop_requested {
                build.stop_requested = true;
                release.note(now, format!("{role} build stop requested"));
            }
        }
        EffectResult::CandidatePublished { candidate } => {
            if release.candidate.is_none() {
                release.note(
                    now,
                    format!("candidate {} is {}", candidate.tag, candidate.digest),
                );
                release.candidate = Some(candidate.clone());
            }
        }
        EffectResult::Attested { attestations } => {
            // Made on scans that a newer verdict has since replaced (or blocked): not kept.
            if release.attestations.is_empty() && release.gate() == GateState::Passed {
                let signed = attestations.iter().any(|a| a.signed_by().is_some());
                release.note(
                    now,
                    format!(
                        "provenance and verdict {}",
                        if signed { "signed" } else { "made (unsigned)" }
                    ),
                );
                release.attestations = attestations.clone();
            }
        }
        EffectResult::Promoted { tags } => {
            if release.published.is_none() {
                release.note(now, format!("published as {}", tags.join(", ")));
                release.published = Some(Publication {
                    tags: tags.clone(),
                    at: now,
                });
            }
        }
        EffectResult::Emitted { kind } => {
            if !release.emitted.contains(kind) {
                release.emitted.push(*kind);
                release.emitted.sort();
                release.note(now, format!("{} emitted", kind.detail_type()));
            }
        }
        EffectResult::Announced { seq } => {
            if let Some(notice) = release.notices.iter_mut().find(|n| n.seq == *seq) {
                notice.announced = true;
            }
        }
    }
    release
        .pending
        .retain(|claim| !result.satisfies(claim.effect));
    let signing = release
        .troubles
        .iter()
        .find(|t| t.effect == Effect::Attest && result.satisfies(t.effect))
        .cloned();
    release
        .troubles
        .retain(|trouble| !result.satisfies(trouble.effect));
    // Signing and promotion are one owed step for the deadline (rule 12): once signed, a
    // promotion still owed has been in trouble since the signing first failed, so a fault
    // that moves from the key to the push does not restart the clock.
    if let Some(signing) = signing {
        if release.required_effects().contains(&Effect::Promote) {
            match release
                .troubles
                .iter_mut()
                .find(|t| t.effect == Effect::Promote)
            {
                Some(promotion) => promotion.since = promotion.since.min(signing.since),
                None => release.troubles.push(Trouble {
                    effect: Effect::Promote,
                    ..signing
                }),
            }
        }
    }
}

/// Brings `pending` in line with what the state requires and returns the effects this
/// decision newly claims (unclaimed, or claimed longer ago than the lease).
pub(super) fn claim_effects(release: &mut Release, now: Millis) -> Vec<Effect> {
    let required = release.required_effects();
    release
        .pending
        .retain(|claim| required.contains(&claim.effect));
    // The last error of an effect no longer owed is no longer news, unless the deadline
    // ended the release over it (its `Release Failed` says what kept failing).
    if release.abandoned.is_none() {
        release
            .troubles
            .retain(|trouble| required.contains(&trouble.effect));
    }
    let mut claimed = Vec::new();
    for effect in required {
        match release.pending.iter_mut().find(|c| c.effect == effect) {
            Some(claim) if now.saturating_sub(claim.claimed_at) < CLAIM_LEASE_MS => {}
            Some(claim) => {
                claim.claimed_at = now;
                claim.by = None;
                claimed.push(effect);
            }
            None => {
                release.pending.push(Claim {
                    effect,
                    claimed_at: now,
                    by: None,
                });
                claimed.push(effect);
            }
        }
    }
    claimed
}
