//! What archgate is tested with and no Lambda links: every port in memory, with the
//! semantics of the real services archgate's promises depend on and a seeded fault plan.

pub mod memory;
