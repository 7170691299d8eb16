//! PSA kinds (HaloPSA, ConnectWise Manage, Autotask): contacts and tickets.

use serde_json::json;
use tenure_runbook::{Field, FieldType, KindSchema, Role};

use crate::common::provider;

fn contact_fields(k: KindSchema) -> KindSchema {
    k.param(Field::optional("phone", FieldType::String, "Phone number.").role(Role::Publishes))
        .param(Field::optional("job_title", FieldType::String, "Job title.").role(Role::Publishes))
}

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        contact_fields(
            KindSchema::action("psa.create_contact", "Create a contact under the tenant's PSA client; an existing one with the same email is adopted as it is.")
                .param(provider())
                .param(Field::optional("client", FieldType::String, "The PSA client id (default: the one mapped to the tenant)."))
                .param(Field::required("email", FieldType::Email, "Email address: how an existing contact is found."))
                .param(Field::required("first_name", FieldType::String, "First name.").role(Role::Publishes))
                .param(Field::required("last_name", FieldType::String, "Last name.").role(Role::Publishes)),
        )
        .output("contact_id", FieldType::String, "The contact's id in the PSA.")
        .output("created", FieldType::Bool, "False when an existing contact was adopted."),
        contact_fields(
            KindSchema::action("psa.update_contact", "Update a contact's fields (only those that differ).")
                .param(provider())
                .param(Field::required("contact", FieldType::String, "The contact's id or email."))
                .param(Field::optional("email", FieldType::Email, "Email address."))
                .param(Field::optional("first_name", FieldType::String, "First name.").role(Role::Publishes))
                .param(Field::optional("last_name", FieldType::String, "Last name.").role(Role::Publishes)),
        )
        .output("contact_id", FieldType::String, "The contact's id.")
        .output("changed", FieldType::list(FieldType::String), "The fields written (none when all were already right)."),
        KindSchema::action("psa.deactivate_contact", "Mark a contact inactive.")
            .param(provider())
            .param(Field::required("contact", FieldType::String, "The contact's id or email."))
            .output("contact_id", FieldType::String, "The contact's id.")
            .output("changed", FieldType::Bool, "False when it was already inactive."),
        KindSchema::action("psa.add_ticket_note", "Add a note to a ticket (once per run and step: the note carries a marker that is looked for first).")
            .param(provider())
            .param(Field::required("ticket", FieldType::String, "The ticket id."))
            .param(Field::required("body", FieldType::String, "The note in Markdown, e.g. `{{run.report}}` (the run's report so far).").role(Role::Publishes))
            .param(Field::optional("internal", FieldType::Bool, "Hide the note from the end user.").default(json!(true)))
            .output("note_id", FieldType::String, "The note's id.")
            .output("added", FieldType::Bool, "False when an earlier attempt had added it."),
        KindSchema::action("psa.update_ticket", "Change a ticket's status or summary (only what differs).")
            .param(provider())
            .param(Field::required("ticket", FieldType::String, "The ticket id."))
            .param(Field::optional("status", FieldType::String, "The new status: a name configured under the PSA's `statuses` (ConnectWise: the board's status name) or a numeric id."))
            .param(Field::optional("summary", FieldType::String, "The new summary.").role(Role::Publishes))
            .output("ticket", FieldType::String, "The ticket id.")
            .output("changed", FieldType::list(FieldType::String), "What was written: `status`, `summary`."),
    ]
}
