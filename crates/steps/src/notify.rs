//! Notification kinds: Teams (Workflows webhook, Adaptive Card) and email.

use tenure_runbook::{Field, FieldType, KindSchema};

/// Why these kinds cannot run yet (see [`KindSchema::unavailable`]).
pub const UNAVAILABLE: &str =
    "no executor yet: notifications come with the Teams webhook and SMTP clients in tenure-kinds";

/// The schemas of this module's kinds, all unavailable for now.
pub fn schemas() -> Vec<KindSchema> {
    let kinds = vec![
        KindSchema::action("notify.teams", "Post a message card to a Teams channel.")
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
            .output("posted", FieldType::Bool, "Whether the post was accepted."),
        KindSchema::action("notify.email", "Send an email.")
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
            .output("message_id", FieldType::String, "The message id."),
    ];
    kinds
        .into_iter()
        .map(|k| k.unavailable(UNAVAILABLE))
        .collect()
}
