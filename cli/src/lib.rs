//! The `archgate` command line: local emulator, provisioning, the demo, replay and release
//! inspection. The library half is what the integration tests drive too.

pub mod commands;
pub mod demo;
pub mod error;
pub mod local;
pub mod provision;
pub mod replay;
pub mod report;
pub mod status;
pub mod verify;
