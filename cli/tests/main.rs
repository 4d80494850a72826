//! The `archgate` binary and the CLI's library, as an operator uses them: one test binary, one
//! module per command family.

mod demo;
mod dlq;
mod evaluate;
mod keys_and_expiry;
mod lifecycle;
mod local_loop;
mod replay;
mod watch;
