//! PSA kinds (HaloPSA, ConnectWise Manage, Autotask): contacts and tickets.

use serde_json::json;
use tenure_runbook::{Field, FieldType, KindSchema};

use crate::common::provider;

fn contact_fields(k: KindSchema) -> KindSchema {
    k.param(Field::optional("email", FieldType::Email, "Email address."))
        .param(Field::optional("phone", FieldType::String, "Phone number."))
        .param(Field::optional(
            "job_title",
            FieldType::String,
            "Job title.",
        ))
        .param(Field::optional(
            "department",
            FieldType::String,
            "Department.",
        ))
}

/// Why these kinds cannot run yet (see [`KindSchema::unavailable`]).
pub const UNAVAILABLE: &str =
    "no executor yet: the PSA kinds come with the HaloPSA, ConnectWise and Autotask clients in tenure-kinds";

/// The schemas of this module's kinds, all unavailable for now.
pub fn schemas() -> Vec<KindSchema> {
    let kinds = vec![
        contact_fields(
            KindSchema::action("psa.create_contact", "Create a contact under the tenant's PSA client; an existing one with the same email is adopted.")
                .param(provider())
                .param(Field::optional("client", FieldType::String, "The PSA client id (default: the one mapped to the tenant)."))
                .param(Field::required("first_name", FieldType::String, "First name."))
                .param(Field::required("last_name", FieldType::String, "Last name.")),
        )
        .output("contact_id", FieldType::String, "The contact's id in the PSA.")
        .output("created", FieldType::Bool, "False when an existing contact was adopted."),
        contact_fields(
            KindSchema::action("psa.update_contact", "Update a contact's fields.")
                .param(provider())
                .param(Field::required("contact", FieldType::String, "The contact's id or email."))
                .param(Field::optional("first_name", FieldType::String, "First name."))
                .param(Field::optional("last_name", FieldType::String, "Last name.")),
        )
        .output("contact_id", FieldType::String, "The contact's id."),
        KindSchema::action("psa.deactivate_contact", "Mark a contact inactive.")
            .param(provider())
            .param(Field::required("contact", FieldType::String, "The contact's id or email."))
            .output("contact_id", FieldType::String, "The contact's id."),
        KindSchema::action("psa.add_ticket_note", "Add a note to a ticket (once per run and step).")
            .param(provider())
            .param(Field::required("ticket", FieldType::String, "The ticket id."))
            .param(Field::required("body", FieldType::String, "The note, e.g. `{{run.report}}`."))
            .param(Field::optional("internal", FieldType::Bool, "Hide the note from the end user.").default(json!(true)))
            .output("note_id", FieldType::String, "The note's id."),
        KindSchema::action("psa.update_ticket", "Change a ticket's status or summary.")
            .param(provider())
            .param(Field::required("ticket", FieldType::String, "The ticket id."))
            .param(Field::optional("status", FieldType::String, "The new status name."))
            .param(Field::optional("summary", FieldType::String, "The new summary."))
            .output("ticket", FieldType::String, "The ticket id."),
    ];
    kinds
        .into_iter()
        .map(|k| k.unavailable(UNAVAILABLE))
        .collect()
}
