//! What a scan event says about one of archgate's per-arch images, once read and checked:
//! the pipeline's input from the scan-gate function.

use super::gate::{ScanStatus, SeverityCounts};
use super::release::Scanner;
use super::{Arch, Digest, ReleaseKey};

/// A completed (or failed) scan of one of archgate's per-arch images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanObservation {
    pub repository: String,
    /// The releases and arches named by the image's `<tag>-<arch>` tags (byte-identical
    /// builds of several releases are one image with several tags); empty for an untagged
    /// image, which is then looked up by digest.
    pub located: Vec<(ReleaseKey, Arch)>,
    pub digest: Digest,
    pub result: ScanResult,
    /// The event's time, in milliseconds since the epoch.
    pub scanned_at: i64,
    /// ECR basic scanning or Amazon Inspector, by the event's source.
    pub scanner: Scanner,
}

/// What a scan event says about the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    /// A scan ended (ECR Image Scan, Inspector2 Scan): its status and counts.
    Reported {
        status: ScanStatus,
        counts: SeverityCounts,
    },
    /// One of the image's findings was created, updated or closed (Inspector2 Finding, from
    /// continuous rescans): the image's current findings are read afresh.
    FindingChanged,
}
