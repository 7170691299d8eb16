//! The three PSAs: HaloPSA, ConnectWise Manage and Autotask, each with its own auth scheme,
//! contact and ticket-note wire format, over one shared [`crate::model::Psa`] shape.

mod autotask;
mod connectwise;
mod halo;

use std::sync::Arc;

use axum::Router;

use crate::model::{Psa, PsaContact, PsaNote};
use crate::shared::Shared;

/// Every PSA's routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .merge(halo::routes())
        .merge(connectwise::routes())
        .merge(autotask::routes())
}

/// Allocates the next numeric id.
fn next_id(p: &mut Psa) -> u64 {
    p.next_id += 1;
    p.next_id
}

/// Adds a contact and returns its id.
fn add_contact(p: &mut Psa, mut c: PsaContact) -> u64 {
    c.id = next_id(p);
    let id = c.id;
    p.contacts.push(c);
    id
}

/// Adds a note and returns its id.
fn add_note(p: &mut Psa, ticket_id: u64, text: String, internal: bool) -> u64 {
    let id = next_id(p);
    p.notes.push(PsaNote {
        id,
        ticket_id,
        text,
        internal,
    });
    id
}
