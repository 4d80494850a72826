//! start-builds: an upload of a build context to the source bucket starts a release.
pub mod handler;
