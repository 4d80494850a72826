//! Which images of a repository workloads use: their references resolved against the
//! inventory and closed over index children (a task that runs an index runs one of its
//! children).

use super::{ImageRecord, ManifestLinks};
use crate::domain::digest::Digest;
use std::collections::{BTreeMap, HashMap};

/// One place a workload names a container image, as the workload wrote it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageUse {
    /// The image reference (`<registry>/<repository>[:tag][@digest]`).
    pub image: String,
    /// The digest the service resolved the reference to, when it says (a running ECS task's
    /// `imageDigest`, a Lambda function's `ResolvedImageUri`).
    pub resolved: Option<Digest>,
    /// Who uses it, for the report: `ecs task definition arn:…:web:12`, `lambda function
    /// arn:…:function:api`.
    pub user: String,
}

/// A parsed image reference: `[host/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    pub host: Option<&'a str>,
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<Digest>,
}

/// Parses an image reference; `None` when it names no repository or carries a digest that
/// is not one.
pub fn parse_reference(image: &str) -> Option<ImageRef<'_>> {
    let image = image.trim();
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(Digest::parse(digest).ok()?)),
        None => (image, None),
    };
    // A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
    let slash = name.rfind('/').map_or(0, |at| at + 1);
    let (name, tag) = match name[slash..].rfind(':') {
        Some(at) => (&name[..slash + at], Some(&name[slash + at + 1..])),
        None => (name, None),
    };
    // The first component is a registry host when it looks like one (Docker's rule).
    let (host, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    };
    if repository.is_empty() || tag.is_some_and(str::is_empty) {
        return None;
    }
    Some(ImageRef {
        host,
        repository,
        tag,
        digest,
    })
}

/// The digests of `repository` that `uses` name, each with its first user (in `uses`
/// order), closed over index children. A reference is matched on the repository name
/// whatever its registry host (an ECR host of another region or account, a VPC endpoint
/// name, a pull-through alias): keeping an image too many is the safe mistake. A tag is
/// resolved to the digest the inventory holds under it now.
pub fn images_in_use(
    repository: &str,
    uses: &[ImageUse],
    images: &[ImageRecord],
) -> BTreeMap<Digest, String> {
    let by_tag: HashMap<&str, &Digest> = images
        .iter()
        .flat_map(|i| i.tags.iter().map(move |t| (t.as_str(), &i.digest)))
        .collect();
    let children: HashMap<&Digest, &[Digest]> = images
        .iter()
        .filter_map(|i| match &i.links {
            ManifestLinks::Index { children } => Some((&i.digest, children.as_slice())),
            _ => None,
        })
        .collect();
    let present: std::collections::HashSet<&Digest> = images.iter().map(|i| &i.digest).collect();
    let mut used: BTreeMap<Digest, String> = BTreeMap::new();
    let mut worklist: Vec<(Digest, &str)> = Vec::new();
    for use_ in uses {
        let Some(reference) = parse_reference(&use_.image) else {
            continue;
        };
        if reference.repository != repository {
            continue;
        }
        let named = reference
            .digest
            .into_iter()
            .chain(use_.resolved.clone())
            .chain(
                reference
                    .tag
                    .and_then(|t| by_tag.get(t))
                    .map(|d| (*d).clone()),
            );
        // Only what this repository holds: a digest of elsewhere keeps nothing here.
        worklist.extend(
            named
                .filter(|d| present.contains(d))
                .map(|d| (d, use_.user.as_str())),
        );
    }
    // Breadth over index children, iterative (nesting depth is not bounded by anything).
    let mut at = 0;
    while at < worklist.len() {
        let (digest, user) = worklist[at].clone();
        at += 1;
        if used.contains_key(&digest) {
            continue;
        }
        for child in children.get(&digest).copied().unwrap_or_default() {
            worklist.push((child.clone(), user));
        }
        used.insert(digest, user.to_owned());
    }
    used
}
