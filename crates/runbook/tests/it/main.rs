//! Integration tests of the runbook compiler: data-driven snapshots, the no-panic guarantee,
//! and the JSON Schema. One binary keeps link times down.

mod expect;
mod no_panic;
mod schema;
mod snapshots;
