#![allow(clippy::result_large_err)] // tests mirror the handlers' `Result<Response, Response>`
//! Contract tests: each vendor endpoint driven with plain HTTP requests shaped like the
//! vendor's documentation, checking responses, rules and fault modes. One binary.

mod batch;
mod faults;
mod fidelity;
mod graph_directory;
mod graph_groups;
mod graph_licences;
mod graph_sdk;
mod graph_users;
mod identity;
mod mailbox;
mod psa;
mod purchases;
mod pwpush;
mod smtp;
mod support;
mod teams_and_state;
