//! `archgate release status`: one release as the ledger records it, for people.

use archgate::domain::gate::Verdict;
use archgate::domain::notice::NoticeKind;
use archgate::domain::release::GateState;
use archgate::domain::{rfc3339, Arch, BuildRole, Digest, Release};

pub fn describe_verdict(arch: Arch, digest: &Digest, verdict: Option<&Verdict>) -> String {
    match verdict {
        None => format!("{arch:<6} {digest}  no finished scan yet"),
        Some(Verdict::Pass {
            counts,
            allowlisted,
        }) => {
            let allowed = if allowlisted.is_empty() {
                String::new()
            } else {
                format!(", allowlisted {}", allowlisted.join(", "))
            };
            format!(
                "{arch:<6} {digest}  pass ({}{allowed})",
                format_counts(counts)
            )
        }
        Some(Verdict::Block {
            rule,
            counts,
            worst,
        }) => {
            let mut text = format!(
                "{arch:<6} {digest}  BLOCK ({}): {rule}",
                format_counts(counts)
            );
            for finding in worst {
                text.push_str(&format!(
                    "\n         {} {} {}{}",
                    finding.severity,
                    finding.id,
                    finding.package.as_deref().unwrap_or("?"),
                    finding
                        .fixed_in
                        .as_deref()
                        .map(|v| format!(" (fixed in {v})"))
                        .unwrap_or_default()
                ));
            }
            text
        }
    }
}

pub fn format_counts(counts: &archgate::domain::gate::SeverityCounts) -> String {
    if counts.is_empty() {
        return "no findings".to_owned();
    }
    counts
        .iter()
        .map(|(severity, n)| format!("{severity} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the release is owed and cannot get, and its stall: `failing  <effect>: N tries since
/// <time> (last <time>): <error>`. Until a release rests, this is why it waits; after the
/// deadline ended it, what kept failing.
pub fn trouble_lines(release: &Release) -> Vec<String> {
    let owed = release.required_effects();
    let mut lines: Vec<String> = release
        .troubles
        .iter()
        .filter(|t| release.abandoned.is_some() || owed.contains(&t.effect))
        .map(|t| {
            format!(
                "failing  {}: {} {} since {} (last {}): {}: {}",
                t.effect,
                t.tries,
                if t.tries == 1 { "try" } else { "tries" },
                rfc3339(t.since),
                rfc3339(t.last_at),
                t.error_type,
                t.error
            )
        })
        .collect();
    if let Some(stall) = &release.stalled {
        lines.push(format!(
            "stalled  {}: {} (published as soon as the fault clears)",
            rfc3339(stall.at),
            stall.reason
        ));
    }
    lines
}

/// The release, its current attempt, the earlier ones, the uploads it refused, findings after
/// publication and the moving tags it holds now.
pub fn print_status(release: &Release, version: u64, moving: &[String]) {
    for line in status_lines(release, version, moving) {
        println!("{line}");
    }
}

/// [`print_status`]'s lines.
pub fn status_lines(release: &Release, version: u64, moving: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    macro_rules! out {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    let phase = release.phase();
    out!(
        "release  {}  {phase}, attempt {} (ledger version {version})",
        release.key,
        release.attempt_started()
    );
    if let Some(reason) = &release.reserved {
        out!("reserved {reason}");
    } else {
        out!(
            "source   s3://{}/{} version {}",
            release.source.bucket,
            release.source.key,
            release.source.revision()
        );
    }
    for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
        let build = release.build(role);
        if let Some(id) = &build.build_id {
            let status = build.status.map(|s| s.as_str()).unwrap_or("RUNNING");
            let image = build
                .image_digest
                .as_ref()
                .map(|d| format!("  pushed {d}"))
                .unwrap_or_default();
            out!("build    {role:<9} {id}  {status}{image}");
        }
    }
    if let Some(candidate) = &release.candidate {
        out!("index    {} {}", candidate.tag, candidate.digest);
        for child in &candidate.children {
            out!("         linux/{:<6} {}", child.arch.as_str(), child.digest);
        }
    }
    if let Some(reason) = release.failure_reason() {
        out!("failed   {reason}");
    }
    if let Some(candidate) = &release.candidate {
        for child in &candidate.children {
            let verdict = release
                .verdict_for(child.arch, &child.digest)
                .map(|r| &r.verdict);
            out!(
                "scan     {}",
                describe_verdict(child.arch, &child.digest, verdict)
            );
        }
    }
    if release.candidate.is_some() {
        match release.gate() {
            GateState::Passed => out!("verdict  PASSED: every platform's scan passes"),
            GateState::Blocked => out!("verdict  FAILED: {}", release.blocked_reason()),
            GateState::Waiting => out!("verdict  waiting for the scans"),
        }
    }
    for line in trouble_lines(release) {
        out!("{line}");
    }
    for attestation in &release.attestations {
        let signed = attestation
            .signed_by()
            .map_or("unsigned".to_owned(), |key| format!("signed by {key}"));
        out!("attested {} ({signed})", attestation.kind);
    }
    if let Some(published) = &release.published {
        out!(
            "tags     {} (at publication, {})",
            published.tags.join(", "),
            rfc3339(published.at)
        );
    }
    if !moving.is_empty() {
        out!("moving   {} (now)", moving.join(", "));
    }
    if let Some(expiry) = &release.expired {
        out!(
            "expired  {} by retention ({}): {}; {}",
            rfc3339(expiry.at),
            expiry.rule.name(),
            expiry.rule,
            if release.is_tombstone() {
                "its images are removed and the name is never built again"
            } else {
                "its images are removed; a new upload of the key starts the next attempt"
            }
        );
    }
    if let Some(queued) = &release.queued {
        out!(
            "queued   upload version {} starts attempt {} once attempt {} has finished its effects",
            queued.revision(),
            release.attempt + 1,
            release.attempt
        );
    }
    for past in &release.history {
        out!(
            "attempt  {}  {}  version {}  {} → {}{}",
            past.attempt,
            past.outcome,
            past.revision,
            rfc3339(past.started_at),
            rfc3339(past.ended_at),
            past.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for notice in &release.notices {
        let announced = if notice.announced {
            "announced"
        } else {
            "not yet announced"
        };
        match &notice.kind {
            NoticeKind::Rejected { source, reason } => out!(
                "refused  {}  s3://{}/{} version {}: {reason} ({announced})",
                rfc3339(notice.at),
                source.bucket,
                source.key,
                source.revision()
            ),
            NoticeKind::Vulnerable { scan } => out!(
                "vulnerable {}  {} ({announced})",
                rfc3339(notice.at),
                describe_verdict(scan.arch, &scan.digest, Some(&scan.verdict))
            ),
        }
    }
    out!("timeline");
    for entry in &release.timeline {
        out!("  {}  {}", rfc3339(entry.at), entry.what);
    }
    lines
}
