//! Integration tests of the runbook compiler: data-driven snapshots, the no-panic guarantee,
//! the JSON Schema and the YAML loader against hostile input. One binary keeps link times down.

mod expect;
mod lints;
mod no_panic;
mod schema;
mod snapshots;
mod yaml_fuzz;
