//! Notification kinds: Teams (Workflows webhook, Adaptive Card) and email (Graph `sendMail` or
//! SMTP).

use tenure_runbook::{Field, FieldType, KindSchema, Role};

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
        ).role(Role::Broadcasts))
        .param(Field::optional(
            "title",
            FieldType::String,
            "A bold first line.",
        ).role(Role::Broadcasts))
        .param(Field::optional(
            "channel",
            FieldType::String,
            "A channel configured under `[teams]` (default: the first).",
        ))
        .param(Field::optional(
            "facts",
            FieldType::Object,
            "Name/value pairs shown as a fact set.",
        ).role(Role::Broadcasts))
        .param(Field::optional(
            "links",
            FieldType::Object,
            "Button title/URL pairs, shown as link buttons.",
        ).role(Role::Broadcasts))
        .output("posted", FieldType::Bool, "Whether the post was accepted."),
        KindSchema::action(
            "notify.email",
            "Send an email (Markdown body as text and HTML) through Microsoft Graph from a configured mailbox, or through an SMTP relay (`[email] transport = \"smtp\"`).",
        )
        .param(Field::optional(
            "from",
            FieldType::Email,
            "The mailbox to send as, or the From address over SMTP (default: `[email] from`).",
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
        .param(Field::required("subject", FieldType::String, "Subject.").role(Role::Publishes))
        .param(Field::required(
            "body",
            FieldType::String,
            "Body, in Markdown: rendered to HTML (raw HTML is escaped); over SMTP the Markdown is also the text part.",
        ).role(Role::Publishes))
        .output(
            "message_id",
            FieldType::String,
            "Graph: the step instance's id (`run:step:item`, sent as the `X-Tenure-Instance` header). SMTP: the `Message-ID`, the same for every attempt of the step instance.",
        ),
    ]
}
