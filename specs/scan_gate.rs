//! The scan gate's policy: which scans of a per-arch image pass, and what a block names.

use archgate::domain::gate::{
    AllowEntry, Finding, OnScanFailure, Policy, ScanReport, ScanStatus, Severity, SeverityCounts,
    Verdict,
};
use time::macros::date;

fn complete(counts: &[(Severity, u64)], findings: Option<Vec<Finding>>) -> ScanReport {
    ScanReport {
        status: ScanStatus::Complete,
        counts: counts.iter().copied().collect(),
        findings,
    }
}

fn finding(id: &str, severity: Severity) -> Finding {
    Finding {
        id: id.into(),
        severity,
        package: Some("openssl".into()),
        fixed_in: Some("3.0.13".into()),
    }
}

#[test]
fn the_default_policy_blocks_any_critical_and_nothing_else() {
    let policy = Policy::default();
    assert!(policy
        .evaluate(
            &complete(&[(Severity::High, 900)], None),
            date!(2026 - 01 - 01)
        )
        .passes());
    let verdict = policy.evaluate(
        &complete(&[(Severity::Critical, 1)], None),
        date!(2026 - 01 - 01),
    );
    let Verdict::Block { rule, .. } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(rule.contains("ARCHGATE_GATE_MAX_CRITICAL=0"), "{rule}");
}

#[test]
fn a_scan_without_severity_keys_counts_zero() {
    assert!(Policy::default()
        .evaluate(&complete(&[], None), date!(2026 - 01 - 01))
        .passes());
}

#[test]
fn an_active_allowlist_entry_lifts_its_finding_and_an_expired_one_does_not() {
    let mut policy = Policy::default();
    policy.allowlist.push(AllowEntry {
        id: "CVE-2024-0001".into(),
        expires: date!(2026 - 06 - 30),
        reason: "not reachable".into(),
    });
    let scan = complete(
        &[(Severity::Critical, 1)],
        Some(vec![finding("CVE-2024-0001", Severity::Critical)]),
    );
    let verdict = policy.evaluate(&scan, date!(2026 - 06 - 30));
    assert_eq!(
        verdict,
        Verdict::Pass {
            counts: SeverityCounts::new(),
            allowlisted: vec!["CVE-2024-0001".into()]
        }
    );
    assert!(!policy.evaluate(&scan, date!(2026 - 07 - 01)).passes());
}

#[test]
fn failed_scans_block_unless_configured_to_pass() {
    let failed = ScanReport {
        status: ScanStatus::Failed,
        counts: SeverityCounts::new(),
        findings: None,
    };
    assert!(!Policy::default()
        .evaluate(&failed, date!(2026 - 01 - 01))
        .passes());
    let lenient = Policy {
        on_scan_failure: OnScanFailure::Pass,
        ..Policy::default()
    };
    assert!(lenient.evaluate(&failed, date!(2026 - 01 - 01)).passes());
}

#[test]
fn a_block_names_the_worst_findings_first() {
    let scan = complete(
        &[],
        Some(vec![
            finding("CVE-3", Severity::Low),
            finding("CVE-2", Severity::Critical),
            finding("CVE-1", Severity::High),
        ]),
    );
    let Verdict::Block { worst, counts, .. } =
        Policy::default().evaluate(&scan, date!(2026 - 01 - 01))
    else {
        panic!()
    };
    assert_eq!(
        worst.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["CVE-2", "CVE-1", "CVE-3"]
    );
    assert_eq!(counts.get(&Severity::Critical), Some(&1));
}
