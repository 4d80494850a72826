//! Uploads and builds: S3 versions and their events, CodeBuild builds that push and finish.

use super::{short, short_id, BuildRun, Job, Note, Upload, World};
use crate::scenario::*;
use archgate::build_variables::{IMAGE_ARCH, IMAGE_REPO_NAME, RELEASE_TAG};
use archgate::domain::rfc3339;
use archgate::domain::{Arch, BuildStatus};
use serde_json::{json, Value};

const S3_TEMPLATE: &str = include_str!("../../../events/s3-object-created.json");

impl World {
    /// S3: a new version of the object, and its "Object Created" event.
    pub(super) fn upload(&mut self, n: usize) {
        let mut planned = self.scenario.uploads[n].clone();
        if planned.key.contains(SIGNATURE_OF_AN_INDEX) {
            // Named after an index archgate pushed (in any repository), when there is one.
            let indexes: Vec<String> = self
                .known
                .clone()
                .iter()
                .filter_map(|r| r.candidate.as_ref().map(|c| c.digest.hex().to_owned()))
                .collect();
            let hex = if indexes.is_empty() {
                archgate::domain::Digest::of(b"no index yet")
                    .hex()
                    .to_owned()
            } else {
                self.rng.pick(&indexes).clone()
            };
            planned.key = planned.key.replace("{index}", &format!("sha256-{hex}"));
        }
        let now = self.now();
        let sequencer = {
            let s = self.sequencers.entry(planned.key.clone()).or_insert(0);
            *s += 1 + (now as u64 % 7);
            *s
        };
        let version = format!("v{n}-{sequencer}");
        while self.uploads.len() <= n {
            self.uploads.push(Upload {
                key: String::new(),
                version: String::new(),
                sequencer: 0,
                at: 0,
                content: CONTENTS[0],
                delivered: false,
            });
        }
        self.uploads[n] = Upload {
            key: planned.key.clone(),
            version: version.clone(),
            sequencer,
            at: now,
            content: planned.content,
            delivered: false,
        };
        let mut event: Value = serde_json::from_str(S3_TEMPLATE).expect("sample is JSON");
        event["id"] = json!(format!("s3-{n}"));
        event["time"] = json!(rfc3339(now));
        let detail = &mut event["detail"];
        detail["bucket"]["name"] = json!(BUCKET);
        detail["object"]["key"] = json!(planned.key);
        detail["object"]["version-id"] = json!(version);
        detail["object"]["etag"] = json!(format!("etag-{}", planned.content.id));
        detail["object"]["sequencer"] = json!(format!("{sequencer:016X}"));
        let label = format!(
            "upload {} {version} (content {})",
            planned.key, planned.content.id
        );
        self.note(label.clone());
        // EventBridge delivers at least once, and late: the earlier attempts' build events
        // come again while this upload is taken up (its StartBuild may be throttled).
        if self.scenario.echoes {
            let tag = archgate::domain::ReleaseTag::from_object_key(&planned.key, PREFIX)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let name = (repository_of(&planned.key).unwrap_or_default(), tag);
            let earlier: Vec<(Value, String)> = self
                .build_events
                .iter()
                .filter(|(n, v, _, _)| *n == name && *v != version)
                .map(|(_, _, event, label)| (event.clone(), label.clone()))
                .collect();
            for (event, label) in earlier {
                if self.rng.chance(50) {
                    // Often while the upload is being taken up, sometimes hours later.
                    let at = now
                        + if self.rng.chance(50) {
                            self.rng.between(0, 5 * MINUTE)
                        } else {
                            self.rng.between(0, 3 * HOUR)
                        };
                    self.schedule(
                        at,
                        Job::Deliver {
                            event,
                            label: format!("{label} (late, again)"),
                            tries: 0,
                            note: Note::None,
                        },
                    );
                }
            }
        }
        // S3 → EventBridge → Lambda is retried, not lost: at least once.
        self.deliver(
            event,
            format!("start-builds {} {version}", planned.key),
            false,
            Note::Upload(n),
        );
    }

    /// A new version of a failed or blocked release's key, delivered at once, as a retention
    /// run starts: the run may expire the attempt it builds again while it is queued.
    pub(super) fn upload_during_retention(&mut self) {
        let ended: Vec<String> = self
            .known
            .clone()
            .iter()
            .filter(|r| {
                matches!(
                    r.phase(),
                    archgate::domain::Phase::Failed | archgate::domain::Phase::Blocked
                ) && is_ordinary(&r.source.key)
            })
            .map(|r| r.source.key.clone())
            .collect();
        if ended.is_empty() || !self.rng.chance(50) {
            return;
        }
        let key = self.rng.pick(&ended).clone();
        let content = *self.rng.pick(&CONTENTS);
        let n = self.scenario.uploads.len();
        self.scenario.uploads.push(PlannedUpload {
            at: self.now(),
            key,
            content,
        });
        self.prompt_delivery = true;
        self.upload(n);
    }

    /// CodeBuild picked up builds archgate started: the world plays them.
    pub(super) fn discover_builds(&mut self) {
        for build in self.svc.builds.started_since(self.builds.len()) {
            if self.builds.contains_key(&build.id) {
                continue;
            }
            let env = |name: &str| build.request.variable(name).unwrap_or_default().to_owned();
            let arch = Arch::parse(&env(IMAGE_ARCH)).unwrap_or(Arch::Amd64);
            let version = build.request.source_version.clone().unwrap_or_default();
            let content = self
                .uploads
                .iter()
                .find(|u| u.version == version)
                .map(|u| u.content)
                .unwrap_or(CONTENTS[0]);
            self.builds.insert(
                build.id.clone(),
                BuildRun {
                    id: build.id.clone(),
                    repository: env(IMAGE_REPO_NAME),
                    tag: env(RELEASE_TAG),
                    arch,
                    content,
                    pushed: None,
                },
            );
            let wait = if self.scenario.slow_builds {
                self.rng.between(30 * MINUTE, 3 * HOUR)
            } else {
                self.rng.between(MINUTE, 12 * MINUTE)
            };
            let at = self.now() + wait;
            self.schedule(at, Job::Push(build.id.clone()));
        }
    }

    pub(super) fn push(&mut self, id: &str) {
        let Some(run) = self.builds.get(id).cloned() else {
            return;
        };
        let still_running = self
            .svc
            .builds
            .get(id)
            .is_some_and(|b| b.status == BuildStatus::InProgress);
        if still_running && run.content.fails_on != Some(run.arch) {
            let digest = self.svc.registry.push(
                &run.repository,
                Some(&format!("{}-{}", run.tag, run.arch)),
                image_manifest(run.content.id, run.arch),
            );
            self.note(format!(
                "build {} pushed {}-{} {}",
                short_id(id),
                run.tag,
                run.arch,
                short(&digest)
            ));
            if let Some(r) = self.builds.get_mut(id) {
                r.pushed = Some(digest.clone());
            }
            self.pushed.insert((run.repository.clone(), digest.clone()));
            if self.scenario.vanishing_images && self.rng.chance(20) {
                let at = self.now() + self.rng.between(5_000, 2 * MINUTE);
                self.schedule(
                    at,
                    Job::Vanish {
                        repository: run.repository.clone(),
                        digest: digest.clone(),
                    },
                );
            }
            let at = self.now() + self.rng.between(30_000, 20 * MINUTE);
            self.schedule(
                at,
                Job::Scan {
                    repository: run.repository.clone(),
                    digest,
                    rescan: false,
                },
            );
        }
        let at = self.now() + self.rng.between(10_000, 3 * MINUTE);
        self.schedule(at, Job::Finish(id.to_owned()));
    }

    pub(super) fn finish(&mut self, id: &str) {
        let Some(run) = self.builds.get(id).cloned() else {
            return;
        };
        let recorded = self.svc.builds.get(id);
        let status = match (&run.pushed, recorded.as_ref().map(|b| b.status)) {
            (_, Some(BuildStatus::Stopped)) => BuildStatus::Stopped,
            // Asked to stop late: a build already past its push may still succeed.
            (pushed, _)
                if recorded.as_ref().is_some_and(|b| b.stop_requested)
                    && !(pushed.is_some() && self.rng.chance(50)) =>
            {
                BuildStatus::Stopped
            }
            (Some(_), _) => BuildStatus::Succeeded,
            (None, _) => BuildStatus::Failed,
        };
        let exported = run
            .pushed
            .iter()
            .flat_map(|d| archgate_testkit::builder::exported_by_build(run.arch, d))
            .collect::<Vec<_>>();
        self.svc.builds.finish(id, status, exported.clone());
        let build = self.svc.builds.get(id).expect("the build exists");
        let template = match run.arch {
            Arch::Amd64 => archgate_testkit::builder::EventTemplate::Amd64,
            Arch::Arm64 => archgate_testkit::builder::EventTemplate::Arm64,
        };
        let event = archgate_testkit::builder::state_change_event(
            template,
            &build.request.project,
            id,
            build.status.as_str(),
            &build.request.environment,
        );
        // CodeBuild's event carries the exported variables, except when it does not.
        let event = if self.rng.chance(85) {
            archgate_testkit::builder::with_exported(event, &exported)
        } else {
            event
        };
        let label = format!(
            "build-completed {} {} {}",
            short_id(id),
            run.tag,
            build.status.as_str()
        );
        let version = build.request.source_version.clone().unwrap_or_default();
        self.build_events.push((
            (run.repository.clone(), run.tag.clone()),
            version,
            event.clone(),
            label.clone(),
        ));
        self.deliver(event, label, true, Note::None);
    }
}
