//! One module per subcommand (`log_line` renders journal events for the run commands).

pub mod demo;
pub mod graph;
pub mod log_line;
pub mod operate;
pub mod plan;
pub mod runs;
pub mod sandbox;
pub mod schema;
pub mod validate;
