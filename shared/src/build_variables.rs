//! The environment variables archgate and its buildspecs exchange (`buildspecs/*.yml`). One
//! place for the names, so the pipeline that sets them, the handler that reads them back
//! from a build and the local builder cannot drift apart.

use crate::domain::digest::truncate_for_message;
use crate::domain::oci::ImagePlatform;
use crate::domain::{Arch, BuildRole, Digest};

/// The ECR repository the build pushes to.
pub const IMAGE_REPO_NAME: &str = "IMAGE_REPO_NAME";
/// The release the build belongs to; with [`IMAGE_REPO_NAME`], how a build is recognised as
/// archgate's.
pub const RELEASE_TAG: &str = "ARCHGATE_RELEASE_TAG";
/// The release attempt that started the build. It comes back in the build's state-change
/// event (which lists the build's environment), so a build of an earlier attempt is never
/// taken as a later attempt's.
pub const RELEASE_ATTEMPT: &str = "ARCHGATE_RELEASE_ATTEMPT";
/// The upload (S3 version id, or ETag) whose attempt started the build: with
/// [`RELEASE_ATTEMPT`], tells attempts apart even after the ledger forgot a release and its
/// name started over.
pub const RELEASE_UPLOAD: &str = "ARCHGATE_RELEASE_UPLOAD";
/// The tag the build pushes (`<tag>-<arch>`, or the candidate tag for the manifest build).
pub const IMAGE_TAG: &str = "IMAGE_TAG";
/// The architecture of an arch build.
pub const IMAGE_ARCH: &str = "IMAGE_ARCH";
/// Exported by the buildspecs: the digest of what the build pushed.
pub const IMAGE_DIGEST: &str = "IMAGE_DIGEST";
/// Exported by the arch buildspec: the pushed image's platform as its config names it,
/// `os/architecture[/variant]` (e.g. `linux/arm64/v8`).
pub const IMAGE_PLATFORM: &str = "IMAGE_PLATFORM";
/// The variables that identify a build's release.
pub const IDENTITY: [&str; 2] = [IMAGE_REPO_NAME, RELEASE_TAG];

/// The manifest build's input: the image the `arch` build pushed (`AMD64_DIGEST`,
/// `ARM64_DIGEST`).
pub fn arch_digest(arch: Arch) -> &'static str {
    match arch {
        Arch::Amd64 => "AMD64_DIGEST",
        Arch::Arm64 => "ARM64_DIGEST",
    }
}

/// The digest a build exported as `IMAGE_DIGEST`, when it is a valid sha256 digest. A
/// malformed one is not trusted: the release then reads its images by tag.
pub fn exported_digest(build_id: &str, exported: &[(String, String)]) -> Option<Digest> {
    let (_, value) = exported.iter().find(|(name, _)| name == IMAGE_DIGEST)?;
    match Digest::parse(value.trim()) {
        Ok(digest) => Some(digest),
        Err(error) => {
            tracing::warn!(build = %truncate_for_message(build_id), %error, "exported IMAGE_DIGEST is not a digest; ignored");
            None
        }
    }
}

/// The platform an arch build exported as `IMAGE_PLATFORM`, when it names the build's own
/// architecture on linux. Anything else is not trusted: the index then declares only the
/// architecture the build was started for.
pub fn exported_platform(
    build_id: &str,
    role: BuildRole,
    exported: &[(String, String)],
) -> Option<ImagePlatform> {
    let arch = match role {
        BuildRole::Amd64 => Arch::Amd64,
        BuildRole::Arm64 => Arch::Arm64,
        BuildRole::Manifest => return None,
    };
    let (_, value) = exported.iter().find(|(name, _)| name == IMAGE_PLATFORM)?;
    match ImagePlatform::parse(arch, value.trim()) {
        Ok(platform) => Some(platform),
        Err(problem) => {
            tracing::warn!(build = %truncate_for_message(build_id), value = %truncate_for_message(value), %problem, "exported IMAGE_PLATFORM is not this build's platform; ignored");
            None
        }
    }
}
