//! The repositories of one deployment: the default one and a few under the namespace, each
//! with the policy it is released under, and the object keys uploads to them use (the same
//! names in every repository, so tags collide across repositories), plus keys that name no
//! repository of archgate's.

use crate::rng::Rng;
use archgate::domain::repository::{Repositories, RepositoryRefusal};

/// The default repository (`ARCHGATE_REPOSITORY`): keys without a folder release into it.
pub const REPOSITORY: &str = "app";
/// The namespace (`ARCHGATE_REPOSITORY_PREFIX`): a key's folder under it is the repository.
pub const NAMESPACE: &str = "apps/";
pub const BUCKET: &str = "archgate-src-123456789012";
pub const PREFIX: &str = "releases/";
pub const MOVING_TAG: &str = "latest";

/// A repository of the scenario and the moving tags its releases are held to. (Its policy's
/// versions change mid-run: `Job::PolicyChange`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryPlan {
    pub name: &'static str,
    /// The folder of its keys below the source prefix (empty for the default repository).
    pub folder: &'static str,
    /// Percent of uploads that go to it.
    pub share: u64,
    pub moving_tags: &'static [&'static str],
}

pub const REPOSITORIES: [RepositoryPlan; 3] = [
    RepositoryPlan {
        name: REPOSITORY,
        folder: "",
        share: 40,
        moving_tags: &[MOVING_TAG],
    },
    RepositoryPlan {
        name: "apps/web",
        folder: "apps/web/",
        share: 30,
        moving_tags: &[MOVING_TAG],
    },
    RepositoryPlan {
        name: "apps/api",
        folder: "apps/api/",
        share: 30,
        moving_tags: &[MOVING_TAG],
    },
];

/// The plan of a repository of the scenario.
pub fn plan(repository: &str) -> Option<&'static RepositoryPlan> {
    REPOSITORIES.iter().find(|r| r.name == repository)
}

/// The moving tags of a repository (none for a repository that is not archgate's).
pub fn moving_tags(repository: &str) -> &'static [&'static str] {
    plan(repository).map_or(&[], |r| r.moving_tags)
}

/// Release names uploads use in every repository: ordinary ones, ones that collide with
/// reserved names (internal suffixes, the moving tag, the build cache), and one whose file
/// name sanitises to an ordinary one's tag (`app+1.1` → `app-1.1`).
pub const ORDINARY: [&str; 4] = ["app-1.0", "app-1.1", "app-2.0", "svc"];
pub const RESERVED: [&str; 5] = [
    "app-1.0-amd64",
    "latest",
    "buildcache",
    "app-2.0-candidate",
    SIGNATURE_OF_AN_INDEX,
];
/// A name shaped like the signature tag of another release's index (`sha256-<hex>.sig`): the
/// world fills in the digest of an index in the registry when it uploads it.
pub const SIGNATURE_OF_AN_INDEX: &str = "{index}.sig";
pub const TAKEN: [&str; 1] = ["app+1.1"];

/// Keys that name no repository of archgate's: a folder outside the namespace, the namespace
/// itself, a folder that is no ECR name. They start nothing and write nothing.
pub const REFUSED: [&str; 3] = [
    "releases/teams/x/app-1.0.zip",
    "releases/apps/app-1.1.zip",
    "releases/apps/Web/app-2.0.zip",
];

/// The key of release `name` of `repository`.
pub fn key(repository: &RepositoryPlan, name: &str) -> String {
    format!("{PREFIX}{}{name}.zip", repository.folder)
}

/// A repository, by the shares of uploads.
pub fn pick_repository(rng: &mut Rng) -> &'static RepositoryPlan {
    let mut roll = rng.below(REPOSITORIES.iter().map(|r| r.share).sum());
    for repository in &REPOSITORIES {
        if roll < repository.share {
            return repository;
        }
        roll -= repository.share;
    }
    &REPOSITORIES[0]
}

/// The key of an ordinary release of some repository.
pub fn ordinary_key(rng: &mut Rng) -> String {
    let repository = pick_repository(rng);
    key(repository, rng.pick::<&str>(&ORDINARY))
}

/// Whether a key is an ordinary release's, in any repository.
pub fn is_ordinary(key: &str) -> bool {
    REPOSITORIES
        .iter()
        .any(|r| ORDINARY.iter().any(|name| self::key(r, name) == key))
}

/// The repositories as the deployment configures them.
pub fn repositories() -> Repositories {
    Repositories {
        default: REPOSITORY.to_owned(),
        namespace: Some(NAMESPACE.to_owned()),
    }
}

/// The repository a key names, or why it names none of archgate's.
pub fn repository_of(key: &str) -> Result<String, RepositoryRefusal> {
    let rest = key.strip_prefix(PREFIX).unwrap_or(key);
    repositories().of_key(rest).map(str::to_owned)
}
