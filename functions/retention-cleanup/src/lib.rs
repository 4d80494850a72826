//! retention-cleanup: on a schedule (or asked with a payload), removes untagged images older
//! than the retention age without ever breaking a multi-arch image.
pub mod handler;
