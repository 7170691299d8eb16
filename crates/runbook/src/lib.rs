//! Tenure's runbook language: a span-keeping YAML model, Handlebars templates with the runbook
//! helpers, typed inputs, and the compiler that turns one runbook file into an immutable
//! [`Plan`] (a DAG of steps) or a list of [`Diagnostic`]s that point at `file:line:col`.
//!
//! The crate does no I/O. The step kinds it checks `with` against come from a [`Catalogue`]
//! passed in by the caller.

pub mod catalogue;
pub mod compile;
pub mod diagnostic;
pub mod duration;
pub mod inputs;
pub mod json_schema;
pub mod plan;
pub mod preview;
pub mod source;
pub mod template;
pub mod yaml;

pub use catalogue::{
    Catalogue, Effect, Field, FieldType, KindClass, KindSchema, Role, SchemaCatalogue,
};
pub use compile::{compile, compile_with, Output, Runbooks, Unresolved};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use plan::{Missed, Plan, Step, Trigger};
pub use source::{Location, SourceFile, Span};
pub use template::{Renderer, Template};
