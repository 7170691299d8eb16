//! One module per subcommand (`log_line` renders journal events for the run commands; `out`
//! writes the output of a run that must not stop when its reader goes away).

pub mod batch_approvers;
pub mod demo;
pub mod demo_summary;
pub mod graph;
pub mod log_line;
pub mod operate;
pub mod out;
pub mod people;
pub mod plan;
pub mod runs;
pub mod sandbox;
pub mod schema;
pub mod serve;
pub mod sync;
pub mod sync_schedule;
pub mod validate;
