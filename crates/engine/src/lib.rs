//! Tenure's engine: what happens to a run, decided by a pure state machine
//! ([`machine::RunMachine`]: `apply(event) -> actions`), how failed attempts are retried
//! ([`retry`]), and the append-only, hash-chained journal every state change is written to
//! ([`journal`]).
//!
//! [`store::Store`] keeps runs, tasks, the journal and outputs durably in SQLite; the
//! [`driver::Worker`] claims tasks, runs step kinds through the execution interface of
//! `tenure-steps` (the engine's own `approval` and `wait` are in [`builtin`]; every other kind
//! is registered from outside) and feeds results back to the machine. The engine knows no
//! vendor and no HTTP client.

pub mod builtin;
pub mod driver;
pub mod journal;
pub mod machine;
pub mod retry;
pub mod secrets;
pub mod store;
