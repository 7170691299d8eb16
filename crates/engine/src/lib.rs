//! Tenure's engine: what happens to a run, decided by a pure state machine
//! ([`machine::RunMachine`]: `apply(event) -> actions`), how failed attempts are retried
//! ([`retry`]), and the append-only, hash-chained journal every state change is written to
//! ([`journal`]).
//!
//! The driver that performs the machine's actions against a store, the SQLite and PostgreSQL
//! stores and the workers are not built yet; this crate is the part they will share.

pub mod journal;
pub mod machine;

pub mod retry;
