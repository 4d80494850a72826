//! The world's trouble: floods of foreign pushes, a damaged item, rescans, fixes re-evaluated.

use super::{short, Done, Job, World};
use crate::scenario::*;
use archgate::domain::gate::SeverityCounts;
use archgate::domain::{Digest, ReleaseKey, ReleaseTag};
use archgate::operation::{CODEBUILD_START_BUILD, ECR_PUT_IMAGE};

impl World {
    pub(super) fn flood(&mut self, pushes: usize) {
        // Under the arch tag of a release that is still building (its scans are what grows).
        let building: Vec<ReleaseKey> = self
            .known
            .clone()
            .iter()
            .filter(|r| r.phase() == archgate::domain::Phase::Building)
            .map(|r| r.key.clone())
            .collect();
        let Some(key) = (!building.is_empty()).then(|| self.rng.pick(&building).clone()) else {
            // Nobody is building right now: try again a little later.
            let at = self.now() + self.rng.between(MINUTE, HOUR);
            self.schedule(at, Job::Flood(pushes));
            return;
        };
        self.note(format!(
            "someone starts pushing {pushes} images under {key}-amd64"
        ));
        self.foreign_push(key.repository, key.tag.to_string(), pushes);
    }

    /// A push under somebody else's arch tag, scanned on push (before the next one moves the
    /// tag), and the next push a little later.
    pub(super) fn foreign_push(&mut self, repository: String, tag: String, left: usize) {
        if left == 0 {
            return;
        }
        self.foreign += 1;
        let digest = self.svc.registry.push(
            &repository,
            Some(&format!("{tag}-amd64")),
            foreign_manifest(self.foreign),
        );
        let now = self.now();
        let scan_at = now + self.rng.between(1_000, 8_000);
        self.schedule(
            scan_at,
            Job::Scan {
                repository: repository.clone(),
                digest,
                rescan: false,
            },
        );
        let next = now + self.rng.between(10_000, 30_000);
        self.schedule(
            next,
            Job::ForeignPush {
                repository,
                tag,
                left: left - 1,
            },
        );
    }

    /// An operator writes a new version of a repository's policy.
    pub(super) fn change_policy(&mut self) {
        let repository = crate::scenario::pick_repository(&mut self.rng).name;
        let version = self.policy_versions.get(repository).copied().unwrap_or(0) + 1;
        let high = self.rng.below(5);
        let record = archgate::domain::policy::PolicyRecord {
            repository: repository.to_owned(),
            version,
            values: [
                ("GATE_MAX_HIGH".to_owned(), high.to_string()),
                ("GATE_MAX_LOW".to_owned(), "unlimited".to_owned()),
            ]
            .into(),
            updated_at: self.now(),
        };
        let doc = serde_json::to_string(&record).expect("a policy serialises");
        self.svc.ledger.put_raw_policy(repository, version, &doc);
        self.policy_versions.insert(repository.to_owned(), version);
        self.note(format!(
            "an operator sets {repository}'s policy version {version} (GATE_MAX_HIGH={high})"
        ));
    }

    pub(super) fn damage(&mut self) {
        // Another version's record, mentioning an image that retention must keep safe.
        let mention = self
            .svc
            .registry
            .repository(REPOSITORY)
            .images
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| Digest::of(b"nothing"));
        let key = ReleaseKey::new(REPOSITORY, ReleaseTag::parse("app-9.9").expect("valid"));
        self.svc.ledger.put_raw(
            &key,
            &format!(
                r#"{{"schema": 7, "key": "{}", "images": ["{mention}"]}}"#,
                key.id()
            ),
        );
        self.damaged = Some(self.step);
        self.damaged_mentions = Some(mention.clone());
        self.note("a newer version wrote app#app-9.9 in a shape this one cannot read".to_owned());
    }

    /// Blocked releases get better findings now and then (a fixed base image, an allowlist
    /// entry) and an operator re-evaluates them; published ones get rescanned.
    pub(super) fn trouble(&mut self) {
        let releases = self.known.clone();
        // A workload starts using a published release only while no retention run is under
        // way, so every run that could delete the image saw the use: the rule is then that
        // an image in use is never deleted.
        let retaining = self.retention_running();
        for release in &releases {
            if !self.scenario.workloads || retaining {
                break;
            }
            if release.phase() != archgate::domain::Phase::Published || !self.rng.chance(3) {
                continue;
            }
            let Some(candidate) = &release.candidate else {
                continue;
            };
            let n = self.uses.len();
            let repository = &release.key.repository;
            let (image, digest) = if self.rng.chance(50) {
                (
                    format!("{repository}:{}", release.key.tag),
                    candidate.digest.clone(),
                )
            } else {
                let child = self.rng.pick(&candidate.children).digest.clone();
                (
                    format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/{repository}@{child}"),
                    child,
                )
            };
            let user = format!("ecs task definition web:{n}");
            self.note(format!("{user} starts using {image}"));
            self.workloads.start_using(archgate::ports::ImageUse {
                image,
                resolved: None,
                user: user.clone(),
            });
            self.uses.push((user, repository.clone(), digest));
        }
        if !self.uses.is_empty() && self.rng.chance(20) {
            let at = self.rng.below(self.uses.len() as u64) as usize;
            let (user, _, _) = self.uses.remove(at);
            self.note(format!("{user} stops"));
            self.workloads.stop(&user);
        }
        for release in releases {
            match release.phase() {
                archgate::domain::Phase::Blocked if self.rng.chance(2) => {
                    let at = self.now() + self.rng.between(HOUR, 3 * DAY);
                    self.schedule(at, Job::Fix(release.key.clone()));
                }
                archgate::domain::Phase::Published if self.rng.chance(1) => {
                    if let Some(candidate) = &release.candidate {
                        let child = self.rng.pick(&candidate.children).digest.clone();
                        let at = self.now() + self.rng.between(HOUR, 30 * DAY);
                        self.schedule(
                            at,
                            Job::Scan {
                                repository: release.key.repository.clone(),
                                digest: child,
                                rescan: true,
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn fix(&mut self, key: &ReleaseKey) {
        let Some(release) = self.known.clone().into_iter().find(|r| r.key == *key) else {
            return;
        };
        if release.phase() != archgate::domain::Phase::Blocked {
            return;
        }
        for child in release.candidate.iter().flat_map(|c| c.children.iter()) {
            self.set_findings(&key.repository, &child.digest, SeverityCounts::new());
        }
        let pipeline = self.svc.pipeline(&self.config);
        let key = release.key.clone();
        self.spawn(
            format!("archgate release evaluate {key}"),
            archgate::pipeline::EVERY_SERVICE,
            None,
            Box::pin(async move {
                Done::Evaluated(
                    key.clone(),
                    archgate::evaluate::evaluate(&pipeline, &key)
                        .await
                        .map(|e| e.phase)
                        .map_err(|e| archgate::error::chain(&e)),
                )
            }),
        );
    }
}

impl World {
    /// A lasting fault begins or is fixed.
    pub(super) fn outage(&mut self, kind: OutageKind, on: bool) {
        use archgate_testkit::memory::Fault;
        let chaos = &self.svc.chaos;
        match (kind, on) {
            (OutageKind::StartBuildThrottled, true) => {
                chaos.start_outage(CODEBUILD_START_BUILD, Fault::Throttle)
            }
            (OutageKind::StartBuildDenied, true) => {
                chaos.start_outage(CODEBUILD_START_BUILD, Fault::Denied)
            }
            (OutageKind::StartBuildThrottled | OutageKind::StartBuildDenied, false) => {
                chaos.end_outage(CODEBUILD_START_BUILD)
            }
            (OutageKind::SigningKeyUnusable, true) => {
                self.svc.signer.set_unusable(Some("the key is disabled"))
            }
            (OutageKind::SigningKeyUnusable, false) => self.svc.signer.set_unusable(None),
            (OutageKind::PutImageDenied, true) => chaos.start_outage(ECR_PUT_IMAGE, Fault::Denied),
            (OutageKind::PutImageDenied, false) => chaos.end_outage(ECR_PUT_IMAGE),
        }
        self.note(format!("{kind:?} {}", if on { "begins" } else { "ends" }));
    }

    /// Someone deletes a per-arch image by hand (refused while an index lists it).
    pub(super) fn vanish(&mut self, repository: &str, digest: &Digest) {
        if self.svc.registry.delete_by_hand(repository, digest) {
            self.vanished
                .insert((repository.to_owned(), digest.clone()));
            self.note(format!("someone deletes {} by hand", short(digest)));
        }
    }
}
