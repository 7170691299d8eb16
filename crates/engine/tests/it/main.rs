//! Engine integration tests: the state machine driven through whole runs of compiled plans
//! (`machine`, with its property test and trace corpus), and the engine API, store and driver
//! on both databases (`store`).

mod calls;
mod db;
mod machine;
mod people;
mod plans;
mod runs_list;
mod sessions;
mod store;
