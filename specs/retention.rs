//! The retention planner, [`archgate::domain::retention::plan`], and the readers it relies on:
//! of manifests, [`archgate::domain::retention::read_links`], and of the image references
//! workloads name, [`archgate::domain::retention::parse_reference`].
//!
//! The examples pin down each rule of the plan on a small repository. The properties check
//! the guarantees that make cleanup safe on random repositories: random DAGs of (nested)
//! indexes over manifests, referrers by OCI subject and by cosign tag, random tags, ages and
//! releases in flight, and a few manifests that did not parse.

use archgate::domain::oci::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use archgate::domain::retention::{
    cosign_subject, parse_reference, plan, read_links, DeleteReason, ImageRecord, KeepReason,
    ManifestLinks, Plan, RetentionPolicy,
};
use archgate::domain::{Digest, Millis};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

const NOW: Millis = 1_700_000_000_000;
const DAY: Millis = 86_400_000;
const AGE: Millis = 7 * DAY;
const OLD: Millis = NOW - 30 * DAY;
const ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn digest(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        untagged_age_ms: AGE,
        max_delete_share: 1.0,
        delete_orphan_referrers: false,
        force: false,
    }
}

/// An untagged single-platform image pushed a month ago.
fn image(name: &str) -> ImageRecord {
    ImageRecord {
        digest: digest(name),
        tags: Vec::new(),
        pushed_at: OLD,
        media_type: Some(OCI_MANIFEST.to_owned()),
        size_bytes: Some(1_000),
        links: ManifestLinks::NotRead,
    }
}

fn tagged(mut record: ImageRecord, tag: &str) -> ImageRecord {
    record.tags.push(tag.to_owned());
    record
}

fn pushed(mut record: ImageRecord, at: Millis) -> ImageRecord {
    record.pushed_at = at;
    record
}

/// A record whose links are read from `body`, as the cleanup reads them from ECR.
fn read(mut record: ImageRecord, media_type: &str, body: serde_json::Value) -> ImageRecord {
    let bytes = serde_json::to_vec(&body).unwrap();
    record.media_type = Some(media_type.to_owned());
    record.links = read_links(Some(media_type), &bytes);
    record
}

fn descriptor(media_type: &str, of: &Digest) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": of.as_str(), "size": 1_000})
}

/// An OCI image index of these platform manifests.
fn index(name: &str, children: &[&str]) -> ImageRecord {
    let manifests: Vec<_> = children
        .iter()
        .map(|child| descriptor(OCI_MANIFEST, &digest(child)))
        .collect();
    read(
        image(name),
        OCI_INDEX,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
    )
}

/// An OCI 1.1 referrer (signature, SBOM, attestation) of `subject`.
fn referrer(name: &str, subject: &Digest) -> ImageRecord {
    read(
        image(name),
        OCI_MANIFEST,
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": descriptor("application/vnd.oci.empty.v1+json", &digest("{}")),
            "layers": [],
            "subject": descriptor(OCI_MANIFEST, subject),
        }),
    )
}

fn cosign_tag(of: &Digest, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", of.hex())
}

fn run(images: &[ImageRecord]) -> Plan {
    plan(images, &HashSet::new(), &policy(), NOW)
}

fn deleted(plan: &Plan) -> Vec<Digest> {
    plan.delete.iter().map(|d| d.digest.clone()).collect()
}

fn reason(plan: &Plan, name: &str) -> Option<KeepReason> {
    plan.keep.get(&digest(name)).cloned()
}

// ---------------------------------------------------------------------------------------
// Reading manifests
// ---------------------------------------------------------------------------------------

#[test]
fn an_index_links_to_its_entries_whatever_says_it_is_an_index() {
    let (amd, arm) = (digest("amd64"), digest("arm64"));
    let manifests = json!([
        descriptor(DOCKER_MANIFEST, &amd),
        descriptor(DOCKER_MANIFEST, &arm)
    ]);
    let expected = ManifestLinks::Index {
        children: vec![amd.clone(), arm.clone()],
    };
    let bodies = [
        // The registry's media type says so.
        (
            Some(OCI_INDEX),
            json!({"schemaVersion": 2, "manifests": manifests}),
        ),
        (
            Some(DOCKER_MANIFEST_LIST),
            json!({"schemaVersion": 2, "manifests": manifests}),
        ),
        // The document's own `mediaType` says so.
        (
            None,
            json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": manifests}),
        ),
        // Only the `manifests` array says so, even against a manifest media type.
        (None, json!({"schemaVersion": 2, "manifests": manifests})),
        (Some(OCI_MANIFEST), json!({"manifests": manifests})),
    ];
    for (media_type, body) in bodies {
        let links = read_links(media_type, &serde_json::to_vec(&body).unwrap());
        assert_eq!(links, expected, "{media_type:?} {body}");
    }
}

#[test]
fn a_manifest_links_to_its_subject_if_it_has_one() {
    let subject = digest("subject");
    for media_type in [OCI_MANIFEST, DOCKER_MANIFEST, ARTIFACT_MANIFEST] {
        let plain = json!({"schemaVersion": 2, "mediaType": media_type, "layers": []});
        let with_subject = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "subject": descriptor(OCI_MANIFEST, &subject),
        });
        assert_eq!(
            read_links(Some(media_type), &serde_json::to_vec(&plain).unwrap()),
            ManifestLinks::Manifest { subject: None }
        );
        assert_eq!(
            read_links(
                Some(media_type),
                &serde_json::to_vec(&with_subject).unwrap()
            ),
            ManifestLinks::Manifest {
                subject: Some(subject.clone())
            }
        );
    }
}

#[test]
fn bytes_that_do_not_parse_mention_every_digest_they_contain_once() {
    // Given: truncated JSON that names two digests, one of them twice, plus look-alikes that
    // are not digests (upper case, too short).
    let (a, b) = (digest("a"), digest("b"));
    let bytes = format!(
        "{{\"manifests\": [{{\"digest\": \"{a}\"}}, {{\"digest\": \"{b}\"}}, \"{a}\", \
         \"sha256:{}\", \"sha256:abc\"",
        "A".repeat(64)
    );

    // When
    let links = read_links(Some(OCI_INDEX), bytes.as_bytes());

    // Then
    let ManifestLinks::Unparseable { reason, mentioned } = links else {
        panic!("expected unparseable, got {links:?}");
    };
    assert!(reason.starts_with("not JSON"), "{reason}");
    assert_eq!(mentioned, vec![a, b]);
}

#[test]
fn an_index_entry_or_subject_without_a_valid_digest_makes_the_manifest_unparseable() {
    let good = digest("good");
    let bodies = [
        json!({"mediaType": OCI_INDEX, "manifests": [{"digest": good.as_str()}, {"digest": "sha256:nope"}]}),
        json!({"mediaType": OCI_INDEX, "manifests": [{"digest": good.as_str()}, {"size": 3}]}),
        json!({"mediaType": OCI_INDEX}),
        json!({"mediaType": OCI_MANIFEST, "subject": {"digest": "md5:0"}, "note": good.as_str()}),
        json!([good.as_str()]),
    ];
    for body in bodies {
        let links = read_links(None, &serde_json::to_vec(&body).unwrap());
        let ManifestLinks::Unparseable { mentioned, .. } = &links else {
            panic!("expected unparseable for {body}, got {links:?}");
        };
        let expected = if body.to_string().contains(good.as_str()) {
            vec![good.clone()]
        } else {
            vec![]
        };
        assert_eq!(*mentioned, expected, "{body}");
    }
}

// ---------------------------------------------------------------------------------------
// Reading image references
// ---------------------------------------------------------------------------------------

#[test]
fn references_parse_with_hosts_ports_tags_and_digests() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let r = parse_reference("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1").unwrap();
    assert_eq!(
        (r.host, r.repository, r.tag),
        (
            Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            "team/app",
            Some("v1")
        )
    );
    let local = format!("localhost:5000/app@{digest}");
    let r = parse_reference(&local).unwrap();
    assert_eq!(
        (r.host, r.repository, r.tag),
        (Some("localhost:5000"), "app", None)
    );
    assert_eq!(r.digest.unwrap().as_str(), digest);
    let both = format!("app:v2@{digest}");
    let r = parse_reference(&both).unwrap();
    assert_eq!((r.host, r.repository, r.tag), (None, "app", Some("v2")));
    assert!(parse_reference("app@sha256:short").is_none());
    assert!(parse_reference("").is_none());
    assert!(parse_reference("app:").is_none());
}

// ---------------------------------------------------------------------------------------
// Planning: examples
// ---------------------------------------------------------------------------------------

#[test]
fn a_tagged_multi_arch_index_keeps_its_untagged_children() {
    // Given: a released index and its two per-arch images, no longer tagged and a month old.
    let images = [
        tagged(index("release", &["amd64", "arm64"]), "myapp-1.4.2"),
        image("amd64"),
        image("arm64"),
    ];

    // When
    let plan = run(&images);

    // Then
    assert!(plan.delete.is_empty(), "{:?}", plan.delete);
    assert_eq!(reason(&plan, "release"), Some(KeepReason::Tagged));
    for child in ["amd64", "arm64"] {
        assert_eq!(
            reason(&plan, child),
            Some(KeepReason::ChildOf(digest("release")))
        );
    }
}

#[test]
fn an_old_untagged_index_goes_with_its_untagged_children_index_first() {
    // Given: a superseded candidate index, untagged and old, and its per-arch images.
    let images = [
        image("amd64"),
        image("arm64"),
        index("candidate", &["amd64", "arm64"]),
    ];

    // When
    let plan = run(&images);

    // Then: all three go, the index before either child (ECR refuses the other way round).
    assert_eq!(plan.delete.len(), 3);
    assert_eq!(plan.delete[0].digest, digest("candidate"));
    let children: BTreeSet<_> = plan.delete[1..].iter().map(|d| d.digest.clone()).collect();
    assert_eq!(children, BTreeSet::from([digest("amd64"), digest("arm64")]));
    assert!(plan.delete.iter().all(|d| d.why == DeleteReason::Untagged));
    assert_eq!(plan.bytes_reclaimed, 3_000);
    assert!(plan.keep.is_empty());
    assert_eq!(plan.refused, None);
}

#[test]
fn attestation_manifests_of_an_index_stay_with_the_index() {
    // Given: a tagged buildx index whose entries are the platform image and its provenance
    // attestation manifest, both untagged and old.
    let (platform, attestation) = (digest("amd64"), digest("amd64-attestation"));
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": platform.as_str(), "size": 1_000,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": attestation.as_str(), "size": 800,
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": platform.as_str()}},
        ],
    });
    let images = [
        tagged(read(image("index"), OCI_INDEX, body), "myapp-1.4.2"),
        image("amd64"),
        image("amd64-attestation"),
    ];

    // When
    let plan = run(&images);

    // Then
    assert!(plan.delete.is_empty());
    assert_eq!(
        reason(&plan, "amd64-attestation"),
        Some(KeepReason::ChildOf(digest("index")))
    );
}

#[test]
fn referrers_of_a_kept_image_stay_a_cosign_tag_keeps_itself() {
    // Given: a released image, its cosign signature (tagged `sha256-<hex>.sig`) and an
    // untagged OCI 1.1 referrer (an SBOM) whose subject is the image; all old.
    let subject = digest("app");
    let sig_tag = cosign_tag(&subject, "sig");
    assert_eq!(cosign_subject(&sig_tag), Some(subject.clone()));
    let images = [
        tagged(image("app"), "myapp-1.4.2"),
        tagged(image("signature"), &sig_tag),
        referrer("sbom", &subject),
    ];

    // When
    let plan = run(&images);

    // Then
    assert!(plan.delete.is_empty());
    assert_eq!(reason(&plan, "signature"), Some(KeepReason::Tagged));
    assert_eq!(reason(&plan, "sbom"), Some(KeepReason::ReferrerOf(subject)));
}

#[test]
fn a_referrer_of_a_deleted_image_goes_before_its_subject() {
    // Given: an old untagged image and an old untagged referrer of it.
    let images = [image("app"), referrer("sbom", &digest("app"))];

    // When
    let plan = run(&images);

    // Then
    assert_eq!(deleted(&plan), vec![digest("sbom"), digest("app")]);
    assert!(plan.delete.iter().all(|d| d.why == DeleteReason::Untagged));
}

#[test]
fn an_orphan_referrer_goes_only_when_the_policy_says_so() {
    // Given: an old untagged referrer whose subject is not in the repository.
    let gone = digest("gone");
    let images = [referrer("sbom", &gone)];

    // When: the default policy.
    let kept = run(&images);
    // When: orphan referrers are deleted.
    let orphan_policy = RetentionPolicy {
        delete_orphan_referrers: true,
        ..policy()
    };
    let removed = plan(&images, &HashSet::new(), &orphan_policy, NOW);

    // Then
    assert!(kept.delete.is_empty());
    assert_eq!(reason(&kept, "sbom"), Some(KeepReason::ReferrerOf(gone)));
    assert_eq!(deleted(&removed), vec![digest("sbom")]);
    assert_eq!(removed.delete[0].why, DeleteReason::OrphanReferrer);
}

#[test]
fn a_young_untagged_image_stays() {
    // Given: untagged images pushed one day ago, just inside and just past the age.
    let images = [
        pushed(image("yesterday"), NOW - DAY),
        pushed(image("inside"), NOW - AGE + 1),
        pushed(image("past"), NOW - AGE),
    ];

    // When
    let plan = run(&images);

    // Then
    assert_eq!(reason(&plan, "yesterday"), Some(KeepReason::Young));
    assert_eq!(reason(&plan, "inside"), Some(KeepReason::Young));
    assert_eq!(deleted(&plan), vec![digest("past")]);
}

#[test]
fn an_image_pushed_in_the_future_is_young() {
    // Given: a clock skew puts the push after `now`, with no retention age at all.
    let images = [pushed(image("skewed"), NOW + DAY)];
    let no_age = RetentionPolicy {
        untagged_age_ms: 0,
        ..policy()
    };

    // When
    let plan = plan(&images, &HashSet::new(), &no_age, NOW);

    // Then
    assert!(plan.delete.is_empty());
    assert_eq!(reason(&plan, "skewed"), Some(KeepReason::Young));
}

#[test]
fn the_images_of_a_release_in_flight_stay() {
    // Given: an untagged old candidate index whose release the ledger still has in flight.
    let images = [
        image("amd64"),
        image("arm64"),
        index("candidate", &["amd64", "arm64"]),
    ];
    let in_flight = HashSet::from([digest("candidate")]);

    // When
    let plan = plan(&images, &in_flight, &policy(), NOW);

    // Then
    assert!(plan.delete.is_empty());
    assert_eq!(reason(&plan, "candidate"), Some(KeepReason::InFlight));
    assert_eq!(
        reason(&plan, "amd64"),
        Some(KeepReason::ChildOf(digest("candidate")))
    );
}

#[test]
fn an_unparseable_manifest_stays_with_every_digest_it_mentions() {
    // Given: an old untagged manifest whose bytes are not JSON but name two images, and an
    // unrelated old untagged image.
    let mut broken = image("broken");
    let bytes = format!(
        "{{ \"manifests\": [ \"{}\", \"{}\"",
        digest("a"),
        digest("b")
    );
    broken.links = read_links(Some(OCI_INDEX), bytes.as_bytes());
    let images = [broken, image("a"), image("b"), image("unrelated")];

    // When
    let plan = run(&images);

    // Then
    assert_eq!(reason(&plan, "broken"), Some(KeepReason::Unparseable));
    for name in ["a", "b"] {
        assert_eq!(
            reason(&plan, name),
            Some(KeepReason::MentionedBy(digest("broken")))
        );
    }
    assert_eq!(deleted(&plan), vec![digest("unrelated")]);
    assert_eq!(plan.unparseable.len(), 1);
    assert_eq!(plan.unparseable[0].0, digest("broken"));
    assert!(plan.unparseable[0].1.starts_with("not JSON"));
}

#[test]
fn the_safety_valve_refuses_to_delete_more_than_half_unless_forced() {
    // Given: three old untagged images and one tagged: the plan would delete 75%.
    let images = [
        image("a"),
        image("b"),
        image("c"),
        tagged(image("d"), "myapp-1.4.2"),
    ];
    let valve = RetentionPolicy {
        max_delete_share: 0.5,
        ..policy()
    };

    // When
    let refused = plan(&images, &HashSet::new(), &valve, NOW);
    let forced = plan(
        &images,
        &HashSet::new(),
        &RetentionPolicy {
            force: true,
            ..valve.clone()
        },
        NOW,
    );

    // Then: nothing goes, and the message says how much would have gone.
    assert!(refused.delete.is_empty());
    assert_eq!(refused.bytes_reclaimed, 0);
    let message = refused.refused.as_deref().expect("refused");
    assert!(message.contains("3 of 4"), "{message}");
    assert!(
        message.contains("75.0%") && message.contains("50.0%"),
        "{message}"
    );
    for name in ["a", "b", "c"] {
        assert_eq!(reason(&refused, name), Some(KeepReason::SafetyValve));
    }
    assert_eq!(reason(&refused, "d"), Some(KeepReason::Tagged));
    // Then: forced, all three go.
    assert_eq!(forced.refused, None);
    assert_eq!(forced.delete.len(), 3);
}

#[test]
fn the_safety_valve_allows_exactly_the_configured_share() {
    // Given: half the repository is deletable.
    let images = [
        image("a"),
        image("b"),
        tagged(image("c"), "t"),
        tagged(image("d"), "u"),
    ];
    let valve = RetentionPolicy {
        max_delete_share: 0.5,
        ..policy()
    };

    // When
    let plan = plan(&images, &HashSet::new(), &valve, NOW);

    // Then
    assert_eq!(plan.refused, None);
    assert_eq!(plan.delete.len(), 2);
}

#[test]
fn deeply_nested_indexes_are_planned_without_recursion() {
    // Given: a chain of 50,000 indexes, each the only child of the previous one: far deeper
    // than a recursive walk could go on a test thread's stack.
    const DEPTH: usize = 50_000;
    let names: Vec<Digest> = (0..DEPTH).map(|i| digest(&format!("n{i}"))).collect();
    let chain: Vec<ImageRecord> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ImageRecord {
            digest: name.clone(),
            links: ManifestLinks::Index {
                children: names.get(i + 1).cloned().into_iter().collect(),
            },
            ..image("unused")
        })
        .collect();

    // When: the head is tagged; then nothing is.
    let mut tagged_chain = chain.clone();
    tagged_chain[0].tags.push("latest".to_owned());
    let kept = run(&tagged_chain);
    let dropped = run(&chain);

    // Then
    assert!(kept.delete.is_empty());
    assert_eq!(kept.keep.len(), DEPTH);
    assert_eq!(deleted(&dropped), names);
}

// ---------------------------------------------------------------------------------------
// Planning: properties over random repositories
// ---------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failure is reported with its shrunk input; nothing is written next to the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What one node of a random repository is. References are to earlier nodes (so indexes
/// and subjects form a DAG, as content addressing guarantees) or to digests the repository
/// does not hold.
#[derive(Clone, Debug)]
enum Shape {
    Image,
    Index(Vec<u16>),
    Referrer(u16),
    Unparseable(Vec<u16>),
}

#[derive(Clone, Debug)]
enum TagShape {
    None,
    Release,
    Cosign(u16),
}

#[derive(Clone, Debug)]
struct NodeSpec {
    shape: Shape,
    tag: TagShape,
    /// 0: a month old, 1: a day old, 2: in the future, 3: exactly the retention age.
    age: u8,
    in_flight: bool,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    let refs = || proptest::collection::vec(any::<u16>(), 1..4);
    let shape = prop_oneof![
        5 => Just(Shape::Image),
        4 => refs().prop_map(Shape::Index),
        2 => any::<u16>().prop_map(Shape::Referrer),
        1 => refs().prop_map(Shape::Unparseable),
    ];
    let tag = prop_oneof![
        6 => Just(TagShape::None),
        2 => Just(TagShape::Release),
        1 => any::<u16>().prop_map(TagShape::Cosign),
    ];
    let age = prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)];
    (shape, tag, age, proptest::bool::weighted(0.1)).prop_map(|(shape, tag, age, in_flight)| {
        NodeSpec {
            shape,
            tag,
            age,
            in_flight,
        }
    })
}

fn policy_spec() -> impl Strategy<Value = RetentionPolicy> {
    (
        prop_oneof![Just(1.0), Just(0.5), Just(0.0), 0.0..1.0f64],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(share, orphans, force)| RetentionPolicy {
            untagged_age_ms: AGE,
            max_delete_share: share,
            delete_orphan_referrers: orphans,
            force,
        })
}

fn node_digest(node: usize) -> Digest {
    digest(&format!("node-{node}"))
}

/// Node `at` refers to an earlier node, or (about one time in four for the first few nodes,
/// rarely later) to a digest the repository does not hold.
fn target(at: usize, raw: u16) -> Digest {
    let pick = raw as usize % (at + 1);
    if pick < at {
        node_digest(pick)
    } else {
        digest(&format!("absent-{raw}"))
    }
}

struct Repository {
    images: Vec<ImageRecord>,
    in_flight: HashSet<Digest>,
}

fn repository(specs: &[NodeSpec]) -> Repository {
    let mut in_flight = HashSet::new();
    let images = specs
        .iter()
        .enumerate()
        .map(|(at, spec)| {
            let own = node_digest(at);
            let links = match &spec.shape {
                Shape::Image => ManifestLinks::Manifest { subject: None },
                Shape::Index(refs) => {
                    let manifests: Vec<_> = refs
                        .iter()
                        .map(|&r| descriptor(OCI_MANIFEST, &target(at, r)))
                        .collect();
                    let body = json!({"mediaType": OCI_INDEX, "manifests": manifests});
                    read_links(Some(OCI_INDEX), &serde_json::to_vec(&body).unwrap())
                }
                Shape::Referrer(r) => {
                    let body = json!({
                        "mediaType": OCI_MANIFEST,
                        "subject": descriptor(OCI_MANIFEST, &target(at, *r)),
                    });
                    read_links(Some(OCI_MANIFEST), &serde_json::to_vec(&body).unwrap())
                }
                Shape::Unparseable(refs) => {
                    let named: Vec<String> =
                        refs.iter().map(|&r| target(at, r).to_string()).collect();
                    let bytes = format!("{{\"manifests\": {named:?}");
                    read_links(Some(OCI_INDEX), bytes.as_bytes())
                }
            };
            let tags = match spec.tag {
                TagShape::None => vec![],
                TagShape::Release => vec![format!("v{at}")],
                TagShape::Cosign(r) => vec![cosign_tag(&target(at, r), "sig")],
            };
            let pushed_at = match spec.age {
                0 => OLD,
                1 => NOW - DAY,
                2 => NOW + DAY,
                _ => NOW - AGE,
            };
            if spec.in_flight {
                in_flight.insert(own.clone());
            }
            ImageRecord {
                digest: own,
                tags,
                pushed_at,
                media_type: None,
                size_bytes: Some(at as u64 + 1),
                links,
            }
        })
        .collect();
    Repository { images, in_flight }
}

/// The reference graph, computed here independently of the planner: image → images it keeps.
fn keeps_edges(images: &[ImageRecord]) -> BTreeMap<Digest, BTreeSet<Digest>> {
    let present: HashSet<&Digest> = images.iter().map(|i| &i.digest).collect();
    let mut edges: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
    let mut edge = |from: &Digest, to: &Digest| {
        if present.contains(from) && present.contains(to) && from != to {
            edges.entry(from.clone()).or_default().insert(to.clone());
        }
    };
    for image in images {
        match &image.links {
            ManifestLinks::Index { children } => {
                children.iter().for_each(|c| edge(&image.digest, c));
            }
            ManifestLinks::Manifest {
                subject: Some(subject),
            } => edge(subject, &image.digest),
            ManifestLinks::Unparseable { mentioned, .. } => {
                mentioned.iter().for_each(|m| edge(&image.digest, m));
            }
            ManifestLinks::Manifest { subject: None }
            | ManifestLinks::NotRead
            | ManifestLinks::Unreadable { .. } => {}
        }
        for subject in image.tags.iter().filter_map(|t| cosign_subject(t)) {
            edge(&subject, &image.digest);
        }
    }
    edges
}

fn reachable(
    from: impl IntoIterator<Item = Digest>,
    edges: &BTreeMap<Digest, BTreeSet<Digest>>,
) -> BTreeSet<Digest> {
    let mut seen: BTreeSet<Digest> = BTreeSet::new();
    let mut queue: VecDeque<Digest> = from.into_iter().collect();
    while let Some(node) = queue.pop_front() {
        if seen.insert(node.clone()) {
            queue.extend(edges.get(&node).into_iter().flatten().cloned());
        }
    }
    seen
}

fn is_young(image: &ImageRecord) -> bool {
    image.pushed_at > NOW || NOW - image.pushed_at < AGE
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_plan_never_breaks_what_it_keeps(
        specs in proptest::collection::vec(node_spec(), 0..48),
        policy in policy_spec(),
    ) {
        // Given a random repository.
        let Repository { images, in_flight } = repository(&specs);
        let by_digest: BTreeMap<&Digest, &ImageRecord> =
            images.iter().map(|i| (&i.digest, i)).collect();
        let edges = keeps_edges(&images);

        // When
        let plan = plan(&images, &in_flight, &policy, NOW);
        let deleted: Vec<Digest> = deleted(&plan);
        let deleted_set: BTreeSet<Digest> = deleted.iter().cloned().collect();
        let position: BTreeMap<&Digest, usize> =
            deleted.iter().enumerate().map(|(at, d)| (d, at)).collect();

        // Then (d): every image is kept with a reason or deleted once, never both, and
        // nothing else appears.
        prop_assert_eq!(deleted_set.len(), deleted.len(), "a digest deleted twice");
        for image in &images {
            let kept = plan.keep.contains_key(&image.digest);
            let gone = deleted_set.contains(&image.digest);
            prop_assert!(kept != gone, "{} kept {} deleted {}", image.digest, kept, gone);
        }
        prop_assert_eq!(plan.keep.len() + deleted.len(), images.len());

        // Then (a) and (e): only untagged, old images outside any release in flight go.
        for digest in &deleted {
            let image = by_digest[digest];
            prop_assert!(image.tags.is_empty(), "tagged {} deleted", digest);
            prop_assert!(!is_young(image), "young {} deleted", digest);
            prop_assert!(!in_flight.contains(digest), "in-flight {} deleted", digest);
        }

        // Then (b): nothing a kept image reaches is deleted.
        let reached = reachable(plan.keep.keys().cloned(), &edges);
        prop_assert!(
            reached.is_disjoint(&deleted_set),
            "deleted but reachable from a kept image: {:?}",
            reached.intersection(&deleted_set).collect::<Vec<_>>()
        );

        // Then (c): no index after any of its children, no referrer after its subject.
        for image in &images {
            let Some(&at) = position.get(&image.digest) else { continue };
            let after: Vec<&Digest> = match &image.links {
                ManifestLinks::Index { children } => children.iter().collect(),
                ManifestLinks::Manifest { subject: Some(subject) } => vec![subject],
                _ => vec![],
            };
            for other in after {
                if let Some(&other_at) = position.get(other) {
                    prop_assert!(at < other_at, "{} deleted after {}", image.digest, other);
                }
            }
        }

        // Then: the kept set is exactly the closure of the seeds (nothing deletable stays),
        // unless the safety valve kept everything.
        let seeds = images.iter().filter(|i| {
            !i.tags.is_empty()
                || is_young(i)
                || in_flight.contains(&i.digest)
                || matches!(i.links, ManifestLinks::Unparseable { .. })
        });
        let mut expected = reachable(seeds.map(|i| i.digest.clone()), &edges);
        if !policy.delete_orphan_referrers {
            let orphans = images.iter().filter(|i| {
                !expected.contains(&i.digest)
                    && i.tags.is_empty()
                    && matches!(&i.links, ManifestLinks::Manifest { subject: Some(s) }
                        if !by_digest.contains_key(s))
            });
            let orphans: Vec<Digest> = orphans.map(|i| i.digest.clone()).collect();
            expected.extend(reachable(orphans, &edges));
        }
        let would_delete = images.len() - expected.len();
        let over_share = would_delete as f64 > policy.max_delete_share * images.len() as f64;
        if would_delete > 0 && over_share && !policy.force {
            prop_assert!(plan.refused.is_some());
            prop_assert!(plan.delete.is_empty());
            prop_assert_eq!(plan.bytes_reclaimed, 0);
            prop_assert_eq!(
                plan.keep.values().filter(|r| **r == KeepReason::SafetyValve).count(),
                would_delete
            );
        } else {
            prop_assert_eq!(&plan.refused, &None);
            let kept: BTreeSet<Digest> = plan.keep.keys().cloned().collect();
            prop_assert_eq!(kept, expected);
            let reclaimed: u64 = deleted.iter().map(|d| by_digest[d].size_bytes.unwrap()).sum();
            prop_assert_eq!(plan.bytes_reclaimed, reclaimed);
        }

        // Then: a seed keeps its own reason, whatever else also reaches it.
        for image in &images {
            let expected_seed = if !image.tags.is_empty() {
                Some(KeepReason::Tagged)
            } else if is_young(image) {
                Some(KeepReason::Young)
            } else if in_flight.contains(&image.digest) {
                Some(KeepReason::InFlight)
            } else if matches!(image.links, ManifestLinks::Unparseable { .. }) {
                Some(KeepReason::Unparseable)
            } else {
                None
            };
            if let Some(seed) = expected_seed {
                prop_assert_eq!(plan.keep.get(&image.digest), Some(&seed));
            }
        }
    }
}
