//! Engine integration tests: the state machine driven through whole runs of compiled plans.

mod db;
mod machine;
// mod store; // LOCAL ONLY: being fixed by someone else
