//! The three PSAs: HaloPSA, ConnectWise Manage and Autotask, each with its own auth scheme,
//! contact and ticket-note wire format, over one shared [`crate::model::Psa`] shape.

mod autotask;
pub(crate) mod connectwise;
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

/// Ticket statuses by id, for the PSAs that set a status by a numeric id (Halo `status_id`,
/// Autotask's `status` picklist); the names are what [`crate::model::PsaTicket`] keeps.
const HALO_STATUSES: &[(u64, &str)] = &[
    (1, "New"),
    (2, "In Progress"),
    (3, "Waiting on Customer"),
    (9, "Closed"),
];
const AUTOTASK_STATUSES: &[(u64, &str)] = &[
    (1, "New"),
    (5, "Complete"),
    (7, "Waiting Customer"),
    (8, "In Progress"),
];

/// The name of status `id` in `table`.
fn status_name(table: &[(u64, &'static str)], id: u64) -> Option<&'static str> {
    table.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

/// The id of status `name` in `table` (0 when unknown).
fn status_id(table: &[(u64, &str)], name: &str) -> u64 {
    table
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map_or(0, |(i, _)| *i)
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
