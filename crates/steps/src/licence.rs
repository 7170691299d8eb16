//! Licence kinds: assign (buying a seat through Pax8 or Partner Center when none is free) and
//! remove.

use serde_json::json;
use tenure_runbook::{Field, FieldType, KindSchema};

use crate::common::user;

/// Where a seat comes from.
pub const SOURCES: &[&str] = &["direct", "pax8", "partner_center"];

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        KindSchema::action(
            "licence.assign",
            "Assign a licence; with pax8 or partner_center, buy a seat first when none is free.",
        )
        .param(user())
        .param(Field::required(
            "sku",
            FieldType::String,
            "SKU part number (e.g. `SPB`) or SKU id.",
        ))
        .param(
            Field::optional(
                "source",
                FieldType::one_of(SOURCES),
                "Where a missing seat is bought.",
            )
            .default(json!("direct")),
        )
        .param(Field::optional(
            "disabled_plans",
            FieldType::list(FieldType::String),
            "Service plans to switch off.",
        ))
        .output("sku", FieldType::String, "The SKU part number.")
        .output("sku_id", FieldType::String, "The SKU id.")
        .output(
            "purchased",
            FieldType::Bool,
            "Whether this attempt bought a seat or found its purchase still on the way to the tenant.",
        )
        .output(
            "assigned",
            FieldType::Bool,
            "False when the user already had the licence directly.",
        ),
        KindSchema::action("licence.remove", "Remove one licence.")
            .param(user())
            .param(Field::required(
                "sku",
                FieldType::String,
                "SKU part number or SKU id.",
            ))
            .param(
                Field::optional(
                    "release_seat",
                    FieldType::Bool,
                    "Also lower the subscription quantity at Pax8 or Partner Center.",
                )
                .default(json!(false)),
            )
            .output("sku", FieldType::String, "The SKU part number.")
            .output(
                "removed",
                FieldType::Bool,
                "False when the user did not have it.",
            ),
        KindSchema::action(
            "licence.remove_all",
            "Remove every directly assigned licence; refuses while the mailbox is not shared.",
        )
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .param(
            Field::optional(
                "allow_mailbox_loss",
                FieldType::Bool,
                "Remove even though the user mailbox would be deleted.",
            )
            .default(json!(false)),
        )
        .output(
            "removed",
            FieldType::list(FieldType::String),
            "SKUs removed.",
        )
        .output(
            "inherited",
            FieldType::list(FieldType::String),
            "SKUs assigned through groups, left in place.",
        ),
    ]
}
