//! Licence kinds: assign (buying a seat through Pax8 or Partner Center when none is free) and
//! remove.

use serde_json::json;
use tenure_runbook::{Effect, Field, FieldType, KindSchema, Role};

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
        KindSchema::action(
            "licence.remove",
            "Remove one licence; with release_seat, also release the seat at Pax8 or Partner Center (now inside the new-commerce window, else at the renewal).",
        )
.effect(Effect::ReleasesMailbox)
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
                "Also lower the subscription at the distributor named by `source`: now within 7 days of the purchase or renewal, else scheduled for the renewal.",
            )
            .default(json!(false)),
        )
        .param(
            Field::optional(
                "source",
                FieldType::one_of(SOURCES),
                "Where the seat was bought (`pax8` or `partner_center` for release_seat).",
            )
            .default(json!("direct")),
        )
        .output("sku", FieldType::String, "The SKU part number.")
        .output(
            "removed",
            FieldType::Bool,
            "False when the user did not have it.",
        )
        .output(
            "seat_release",
            FieldType::String,
            "With release_seat: `released` (lowered now), `scheduled` (lowered at the renewal) or `not_releasable`; else null.",
        )
        .output(
            "seat_release_date",
            FieldType::String,
            "When the seat stops being billed (YYYY-MM-DD: today or the renewal date); null when not releasable.",
        )
        .output(
            "seat_release_reason",
            FieldType::String,
            "Why, in words (the quantities, the window, or the distributor's refusal).",
        ),
        KindSchema::action(
            "licence.remove_all",
            "Remove every directly assigned licence; refuses while the mailbox is not shared.",
        )
.effect(Effect::Destructive)
.effect(Effect::ReleasesMailbox)
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .output_role("id", Role::Subject)
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
