//! ECR scans: findings on push and rescans, announced as ECR's or Inspector's events.

use super::{short, Note, World};
use archgate::domain::gate::{ScanStatus, Severity, SeverityCounts};
use archgate::domain::rfc3339;
use archgate::domain::{Digest, ReleaseKey};
use archgate::ports::ScanFindings;
use serde_json::{json, Value};

const SCAN_TEMPLATE: &str = include_str!("../../../events/ecr-scan-findings.json");
const FINDING_TEMPLATE: &str = include_str!("../../../events/inspector2-finding.json");

impl World {
    /// ECR scans an image: findings as its content carries them (or, for a rescan, a new
    /// critical finding), then the scan event with the image's tags at that moment.
    pub(super) fn scan(&mut self, repository: &str, digest: &Digest, rescan: bool) {
        let now = self.now();
        let Some(tags) = self.svc.registry.inspect(repository, |repo| {
            repo.images
                .contains_key(digest)
                .then(|| repo.tags_of(digest))
        }) else {
            return;
        };
        let vulnerable = rescan
            || self.builds.values().any(|b| {
                b.pushed.as_ref() == Some(digest) && b.content.vulnerable_on == Some(b.arch)
            });
        let mut counts = SeverityCounts::new();
        if vulnerable {
            counts.insert(Severity::Critical, 1);
        }
        counts.insert(Severity::High, 2);
        self.set_findings(repository, digest, counts.clone());
        // A rescan reaches archgate as ECR's scan event (basic scanning) or as Inspector's
        // finding event (enhanced scanning's continuous rescans).
        let event = if rescan && self.rng.chance(50) {
            let mut event: Value = serde_json::from_str(FINDING_TEMPLATE).expect("sample is JSON");
            event["id"] = json!(format!("finding-{}-{now}", digest.hex()));
            event["time"] = json!(rfc3339(now));
            event["resources"] = json!([format!(
                "arn:aws:ecr:eu-west-1:123456789012:repository/{repository}/{digest}"
            )]);
            let image = &mut event["detail"]["resources"][0]["details"]["awsEcrContainerImage"];
            image["repositoryName"] = json!(repository);
            image["imageHash"] = json!(digest);
            image["imageTags"] = json!(tags);
            event
        } else {
            let mut event: Value = serde_json::from_str(SCAN_TEMPLATE).expect("sample is JSON");
            event["id"] = json!(format!("scan-{}-{now}", digest.hex()));
            event["time"] = json!(rfc3339(now));
            let detail = &mut event["detail"];
            detail["repository-name"] = json!(repository);
            detail["image-digest"] = json!(digest);
            detail["image-tags"] = json!(tags);
            detail["finding-severity-counts"] = json!(counts
                .iter()
                .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
                .collect::<serde_json::Map<_, _>>());
            event
        };
        let note = match (rescan, self.published_holding(repository, digest)) {
            (true, Some(key)) => Note::Vulnerable {
                key,
                digest: digest.clone(),
            },
            _ => Note::None,
        };
        let label = format!(
            "scan-gate {} {}{}",
            short(digest),
            if vulnerable { "CRITICAL" } else { "clean" },
            if rescan { " (rescan)" } else { "" }
        );
        self.deliver(event, label, true, note);
    }

    /// ECR's findings of an image of a repository change (a scan, a fix): noted, so that a
    /// release's scan record can be traced to its own repository's scans.
    pub(super) fn set_findings(
        &mut self,
        repository: &str,
        digest: &Digest,
        counts: SeverityCounts,
    ) {
        let now = self.now();
        self.svc.registry.set_scan(
            repository,
            digest,
            ScanFindings {
                status: Some(ScanStatus::Complete),
                counts,
                findings: Vec::new(),
                completed_at: Some(now),
            },
        );
        self.scanned
            .entry((repository.to_owned(), digest.clone()))
            .or_default()
            .insert(now);
    }

    /// A published release of the repository whose index lists this image.
    fn published_holding(&self, repository: &str, digest: &Digest) -> Option<ReleaseKey> {
        self.known.clone().into_iter().find_map(|r| {
            (r.phase() == archgate::domain::Phase::Published
                && r.key.repository == repository
                && r.candidate
                    .as_ref()
                    .is_some_and(|c| c.children.iter().any(|ch| &ch.digest == digest)))
            .then(|| r.key.clone())
        })
    }
}
