//! The environment variables archgate and its buildspecs exchange (`buildspecs/*.yml`). One
//! place for the names, so the pipeline that sets them, the handler that reads them back
//! from a build and the local builder cannot drift apart.

use crate::domain::Arch;

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
