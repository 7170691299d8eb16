//! Notification kinds: Teams (Workflows webhook, Adaptive Card) and email.

use tenure_runbook::{Field, FieldType, KindSchema};

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        KindSchema::action(
            "notify.teams",
            "Post an Adaptive Card to a Teams channel (Workflows webhook).",
        )
        .param(Field::required(
            "message",
            FieldType::String,
            "The message, in Markdown.",
        ))
        .param(Field::optional(
            "title",
            FieldType::String,
            "A bold first line.",
        ))
        .param(Field::optional(
            "channel",
            FieldType::String,
            "A channel configured under `[teams]` (default: the first).",
        ))
        .param(Field::optional(
            "facts",
            FieldType::Object,
            "Name/value pairs shown as a fact set.",
        ))
        .param(Field::optional(
            "links",
            FieldType::Object,
            "Button title/URL pairs, shown as link buttons.",
        ))
        .output("posted", FieldType::Bool, "Whether the post was accepted."),
        KindSchema::action(
            "notify.email",
            "Send an email through Microsoft Graph from a configured mailbox.",
        )
        .param(Field::optional(
            "from",
            FieldType::Email,
            "The mailbox to send as (default: `[email] from`).",
        ))
        .param(Field::required(
            "to",
            FieldType::list(FieldType::Email),
            "Recipients.",
        ))
        .param(Field::optional(
            "cc",
            FieldType::list(FieldType::Email),
            "Copy recipients.",
        ))
        .param(Field::required("subject", FieldType::String, "Subject."))
        .param(Field::required(
            "body",
            FieldType::String,
            "Body, in Markdown.",
        ))
        .output(
            "message_id",
            FieldType::String,
            "The step instance's id, sent as the `X-Tenure-Instance` header.",
        ),
    ]
}
