//! Tenure's engine: what happens to a run, decided by a pure state machine
//! ([`machine::RunMachine`]: `apply(event, now) -> actions`), journaled by one pure function
//! of (event, actions) into an append-only, keyed hash chain ([`journal`]), carried out by
//! the durable [`store::Store`] (SQLite or PostgreSQL), executed by [`driver::Worker`]s, and
//! driven by every front end through the [`Engine`] API. The engine runs `approval` and `wait`
//! itself ([`builtin`]); every other kind comes through the execution interface of
//! `tenure-steps` (the vendor kinds and `http.request` from `tenure-kinds`). What a run did, in
//! words, is its [`report`].

pub mod api;
pub mod builtin;
pub mod driver;
pub mod journal;
pub mod labels;
pub mod machine;
mod names;
pub mod people;
pub mod report;
pub mod secrets;
pub mod store;

pub use api::{
    Decide, Engine, PendingApproval, StartRun, Started, TenantLookup, Trigger, SCHEDULE_SOURCE,
};
