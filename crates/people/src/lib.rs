//! People sync: keep a tenant in step with the people an HR source holds, the way identity
//! platforms do. A source (CSV, JSON, an HTTP JSON endpoint) is mapped to Entra attributes;
//! each person is correlated with the tenant's accounts through durable links (kept by the
//! engine's store) and matching attributes; reconciliation gives every person and every
//! unclaimed account a situation, and a policy per situation chooses the action; applying a
//! plan starts the joiner, update, activation and leaver runbooks through the `Engine` API.

pub mod apply;
pub mod config;
pub mod mapping;
pub mod model;
pub mod plan;
pub mod policy;
pub mod render;
pub mod source;
pub mod sync;
pub mod tenant;

pub use model::{Account, AccountRef, Action, Change, Item, List, Person, Situation, SyncPlan};
