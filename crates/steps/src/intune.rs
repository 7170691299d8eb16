//! Intune device kinds: wipe or retire every managed device of a user.

use serde_json::json;
use tenure_runbook::{Effect, Field, FieldType, KindSchema, Role};

use crate::common::user;

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        KindSchema::action(
            "intune.wipe_devices",
            "Factory-reset every managed device of the user and report each.",
        )
        .effect(Effect::Destructive)
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .output_role("id", Role::Subject)
        .param(
            Field::optional(
                "keep_enrollment_data",
                FieldType::Bool,
                "Keep enrollment state.",
            )
            .default(json!(false)),
        )
        .param(
            Field::optional(
                "keep_user_data",
                FieldType::Bool,
                "Keep user data on the device.",
            )
            .default(json!(false)),
        )
        .output(
            "devices",
            FieldType::list(FieldType::Object),
            "Each device with its outcome.",
        )
        .output("wiped", FieldType::Int, "How many wipes were sent."),
        KindSchema::action(
            "intune.retire_devices",
            "Remove company data and management from every device of the user.",
        )
        .effect(Effect::Destructive)
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .output_role("id", Role::Subject)
        .output(
            "devices",
            FieldType::list(FieldType::Object),
            "Each device with its outcome.",
        )
        .output("retired", FieldType::Int, "How many retires were sent."),
    ]
}
