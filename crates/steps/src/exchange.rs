//! Exchange Online mailbox kinds (the admin API's `InvokeCommand`).

use serde_json::json;
use tenure_runbook::{Effect, Field, FieldType, KindSchema, Role};

use crate::common::user;

fn mailbox(kind: &str, description: &str) -> KindSchema {
    KindSchema::action(kind, description)
        .param(user())
        .output(
            "mailbox",
            FieldType::String,
            "The mailbox's primary address.",
        )
        .output_role("mailbox", Role::Subject)
}

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        mailbox(
            "exchange.convert_to_shared",
            "Convert the user mailbox to a shared mailbox (keeps the data without a licence).",
        )
.effect(Effect::PreservesMailbox)
        .param(
            Field::optional(
                "wait_for_mailbox",
                FieldType::Duration,
                "How long to wait in all for a new mailbox to appear (the step looks again later without holding a worker).",
            )
            .default(json!("30m")),
        )
        .output(
            "type",
            FieldType::String,
            "The mailbox type after the change (`SharedMailbox`).",
        )
        .output(
            "converted",
            FieldType::Bool,
            "False when the mailbox was already shared.",
        ),
        mailbox(
            "exchange.convert_to_regular",
            "Convert a shared mailbox back to a user mailbox (a rehire); assign a licence first.",
        )
        .output(
            "type",
            FieldType::String,
            "The mailbox type after the change (`UserMailbox`).",
        )
        .output(
            "converted",
            FieldType::Bool,
            "False when the mailbox already was a user mailbox.",
        ),
        mailbox(
            "exchange.hide_from_gal",
            "Hide the mailbox from the global address list.",
        )
        .param(
            Field::optional("hidden", FieldType::Bool, "Hide (true) or show (false).")
                .default(json!(true)),
        )
        .output("hidden", FieldType::Bool, "Whether the mailbox is hidden now.")
        .output(
            "changed",
            FieldType::Bool,
            "False when it already was as asked.",
        ),
        mailbox(
            "exchange.set_forwarding",
            "Forward the mailbox's mail to another address.",
        )
        .param(Field::required(
            "forward_to",
            FieldType::Email,
            "Where mail goes.",
        ))
        .param(
            Field::optional(
                "keep_copy",
                FieldType::Bool,
                "Also keep a copy in the mailbox.",
            )
            .default(json!(true)),
        )
        .output("forward_to", FieldType::Email, "Where mail goes now.")
        .output(
            "changed",
            FieldType::Bool,
            "False when forwarding already was as asked.",
        ),
        mailbox(
            "exchange.grant_full_access",
            "Give someone full access to the mailbox.",
        )
        .param(Field::required(
            "trustee",
            FieldType::Email,
            "Who gets access.",
        ))
        .param(
            Field::optional(
                "auto_mapping",
                FieldType::Bool,
                "Show the mailbox in the trustee's Outlook.",
            )
            .default(json!(true)),
        )
        .output("trustee", FieldType::Email, "Who has access.")
        .output(
            "granted",
            FieldType::Bool,
            "False when the trustee already had full access.",
        ),
        mailbox("exchange.set_auto_reply", "Set the automatic reply.")
            .param(Field::required(
                "message",
                FieldType::String,
                "The reply to internal senders.",
            ).role(Role::Publishes))
            .param(Field::optional(
                "external_message",
                FieldType::String,
                "The reply to external senders (default: the same).",
            ).role(Role::Publishes))
            .param(
                Field::optional(
                    "external",
                    FieldType::one_of(&["all", "known", "none"]),
                    "Which external senders get a reply.",
                )
                .default(json!("all")),
            )
            .param(Field::optional(
                "start",
                FieldType::Datetime,
                "When replies start (default: now).",
            ))
            .param(Field::optional(
                "end",
                FieldType::Datetime,
                "When replies stop (default: never).",
            ))
            .output(
                "changed",
                FieldType::Bool,
                "False when the reply already was as asked.",
            ),
    ]
}
