//! Password kinds: generate one, and deliver it (one-time Password Pusher link, direct, none).

use serde_json::json;
use tenure_runbook::{Field, FieldType, KindSchema, Role};

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        KindSchema::action(
            "password.generate",
            "Generate a random password (never logged; stored encrypted).",
        )
        .param(Field::optional("length", FieldType::Int, "Characters.").default(json!(16)))
        .param(Field::optional("uppercase", FieldType::Bool, "Include A-Z.").default(json!(true)))
        .param(Field::optional("lowercase", FieldType::Bool, "Include a-z.").default(json!(true)))
        .param(Field::optional("digits", FieldType::Bool, "Include 0-9.").default(json!(true)))
        .param(Field::optional("symbols", FieldType::Bool, "Include symbols.").default(json!(true)))
        .param(
            Field::optional(
                "exclude_ambiguous",
                FieldType::Bool,
                "Leave out 0/O, 1/l/I.",
            )
            .default(json!(true)),
        )
        .output(
            "password",
            FieldType::Secret,
            "The password (a secret: shown as ***).",
        ),
        KindSchema::action(
            "password.share",
            "Deliver a secret: a one-time Password Pusher link (looked up before a second push), the secret for a direct message, or nothing.",
        )
        .param(
            Field::optional(
                "method",
                FieldType::one_of(&["secure_link", "direct", "none"]),
                "How to deliver it.",
            )
            .default(json!("secure_link")),
        )
        .param(Field::required(
            "secret",
            FieldType::Secret,
            "The secret, e.g. `{{steps.create_user.outputs.password}}`.",
        ))
        .param(
            Field::optional(
                "expire_after_views",
                FieldType::Int,
                "Views before the link dies (1-100).",
            )
            .default(json!(1)),
        )
        .param(
            Field::optional(
                "expire_after_days",
                FieldType::Int,
                "Days before the link dies (1-90).",
            )
            .default(json!(7)),
        )
        .param(Field::optional(
            "recipient",
            FieldType::Email,
            "Who receives the link or message.",
        ))
        .param(Field::optional(
            "note",
            FieldType::String,
            "A note shown with the link (not the secret).",
        ).role(Role::Publishes))
        .output(
            "url",
            FieldType::Secret,
            "The one-time link (secure_link only; a secret: shown as ***).",
        )
        .output(
            "secret",
            FieldType::Secret,
            "The secret itself, for the message that delivers it (direct only).",
        )
        .output("method", FieldType::String, "How it was delivered.")
        .output_role("url", Role::Delivers)
        .output_role("secret", Role::Delivers),
    ]
}
