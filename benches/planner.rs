//! Measures the retention planner on a synthetic repository of 100,000 images, 10,000 of
//! them multi-arch indexes: planning time (best and median of five runs) and peak memory.
//!
//! `cargo bench -p archgate-benches --bench planner`. The budget: under 1 s and under 256 MB.

use archgate::domain::retention::{plan, ImageRecord, ManifestLinks, Plan, RetentionPolicy};
use archgate::domain::{Digest, Millis};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const IMAGES: usize = 100_000;
const INDEXES: usize = 10_000;
const RUNS: usize = 5;
const NOW: Millis = 1_700_000_000_000;
const DAY: Millis = 86_400_000;
const TIME_BUDGET: Duration = Duration::from_secs(1);
const MEMORY_BUDGET_KB: u64 = 256 * 1024;

/// splitmix64: a fixed seed gives the same repository on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Repository {
    images: Vec<ImageRecord>,
    in_flight: HashSet<Digest>,
    referrers: usize,
}

fn record(
    digest: Digest,
    tags: Vec<String>,
    pushed_at: Millis,
    links: ManifestLinks,
) -> ImageRecord {
    ImageRecord {
        digest,
        tags,
        pushed_at,
        media_type: None,
        size_bytes: Some(1 << 20),
        links,
    }
}

/// Ten thousand indexes of two or three per-arch images each (a quarter tagged), cosign
/// signatures and OCI referrers of some of them, standalone images to make up the 100,000,
/// a tenth of everything pushed within the retention age, a few releases in flight and a few
/// manifests that did not parse.
fn repository() -> Repository {
    let mut rng = Rng(0x5eed);
    let age = |rng: &mut Rng| {
        if rng.chance(10) {
            NOW - rng.below(6) as Millis * DAY
        } else {
            NOW - (8 + rng.below(365)) as Millis * DAY
        }
    };
    let mut next_digest = 0usize;
    let mut fresh = || {
        next_digest += 1;
        Digest::of(format!("image-{next_digest}").as_bytes())
    };

    let mut images = Vec::with_capacity(IMAGES);
    let mut in_flight = HashSet::new();
    let mut referrers = 0;
    for i in 0..INDEXES {
        let children: Vec<Digest> = (0..2 + i % 2).map(|_| fresh()).collect();
        let index = fresh();
        let tags = if rng.chance(25) {
            vec![format!("myapp-1.{}.{}", i / 100, i % 100)]
        } else {
            vec![]
        };
        let pushed_at = age(&mut rng);
        for child in &children {
            let links = ManifestLinks::Manifest { subject: None };
            images.push(record(child.clone(), vec![], pushed_at, links));
        }
        if i % 200 == 0 {
            in_flight.insert(index.clone());
        }
        // A cosign signature of one index in ten, an OCI 1.1 referrer (SBOM) of one in five.
        if i % 10 == 0 {
            let tag = format!("sha256-{}.sig", index.hex());
            let links = ManifestLinks::Manifest { subject: None };
            images.push(record(fresh(), vec![tag], pushed_at, links));
            referrers += 1;
        }
        if i % 5 == 0 {
            let links = ManifestLinks::Manifest {
                subject: Some(index.clone()),
            };
            images.push(record(fresh(), vec![], pushed_at, links));
            referrers += 1;
        }
        let links = if i % 1_000 == 999 {
            ManifestLinks::Unparseable {
                reason: "not JSON: EOF while parsing".to_owned(),
                mentioned: children,
            }
        } else {
            ManifestLinks::Index { children }
        };
        images.push(record(index, tags, pushed_at, links));
    }
    while images.len() < IMAGES {
        let tags = if rng.chance(10) {
            vec![format!("build-{}", images.len())]
        } else {
            vec![]
        };
        let pushed_at = age(&mut rng);
        let links = ManifestLinks::NotRead;
        images.push(record(fresh(), tags, pushed_at, links));
    }
    Repository {
        images,
        in_flight,
        referrers,
    }
}

/// A `Vm…` line of /proc/self/status, in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(
        || "n/a".to_owned(),
        |kb| format!("{:.1} MB", kb as f64 / 1024.0),
    )
}

fn main() {
    let rss_before = status_kb("VmRSS:");

    let Repository {
        images,
        in_flight,
        referrers,
    } = repository();
    let rss_inventory = status_kb("VmRSS:");
    let policy = RetentionPolicy {
        untagged_age_ms: 7 * DAY,
        max_delete_share: 0.5,
        delete_orphan_referrers: false,
        force: true,
    };

    let mut times = Vec::with_capacity(RUNS);
    let mut last: Option<Plan> = None;
    for _ in 0..RUNS {
        drop(last.take());
        let started = Instant::now();
        let planned = plan(&images, &in_flight, &policy, NOW);
        times.push(started.elapsed());
        last = Some(std::hint::black_box(planned));
    }
    let peak = status_kb("VmHWM:");
    let planned = last.expect("at least one run");
    times.sort();
    let (best, median) = (times[0], times[RUNS / 2]);

    let indexes = images
        .iter()
        .filter(|i| matches!(i.links, ManifestLinks::Index { .. }))
        .count();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let verdict = |ok: bool| if ok { "within budget" } else { "OVER BUDGET" };
    println!(
        "## Retention planner ({} images, {INDEXES} indexes)",
        images.len()
    );
    println!();
    println!("| measure | value | note |");
    println!("|---|---|---|");
    println!(
        "| inventory | {} images | {indexes} indexes read, {} unparseable, {referrers} referrers, {} in flight |",
        images.len(),
        planned.unparseable.len(),
        in_flight.len(),
    );
    println!(
        "| plan | {} deleted, {} kept | {:.1} GiB reclaimed; forced past the {:.0}% safety valve, so the whole deletion order is computed |",
        planned.delete.len(),
        planned.keep.len(),
        planned.bytes_reclaimed as f64 / (1u64 << 30) as f64,
        policy.max_delete_share * 100.0,
    );
    println!(
        "| plan time, best of {RUNS} | {} | {} (< {} ms) |",
        ms(best),
        verdict(best < TIME_BUDGET),
        TIME_BUDGET.as_millis()
    );
    println!(
        "| plan time, median of {RUNS} | {} | {} |",
        ms(median),
        verdict(median < TIME_BUDGET)
    );
    println!(
        "| RSS before the inventory | {} | process baseline |",
        mb(rss_before)
    );
    println!(
        "| RSS with the inventory | {} | input held in memory |",
        mb(rss_inventory)
    );
    println!(
        "| peak RSS (VmHWM) after planning | {} | {} (< {} MB) |",
        mb(peak),
        peak.map_or("n/a", |kb| verdict(kb < MEMORY_BUDGET_KB)),
        MEMORY_BUDGET_KB / 1024
    );
}
