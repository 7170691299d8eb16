//! One module per subcommand.

pub mod demo;
pub mod graph;
pub mod plan;
pub mod runs;
pub mod sandbox;
pub mod schema;
pub mod validate;
