//! What archgate is tested and tried out with, and no Lambda links: every port in memory
//! (with the semantics of the real services archgate's promises depend on and a seeded fault
//! plan), the routing of events to the functions as the template's rules route them, the
//! local builder that stands in for CodeBuild, and the one launcher of the AWS emulator.

pub mod builder;
pub mod emulator;
pub mod memory;
pub mod routing;
