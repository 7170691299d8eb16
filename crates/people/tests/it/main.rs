//! The integration tests of `tenure-people` (one binary): the reconciliation corpus, the
//! source readers (CSV, JSON, HTTP against a local server), the mapping and the configuration.

mod apply;
mod config;
mod hostile;
mod mapping;
mod plans;
mod properties;
mod source;
mod tenant;
