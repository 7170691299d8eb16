//! Entra ID user lifecycle and group membership kinds (Microsoft Graph).

use serde_json::json;
use tenure_runbook::{Effect, Field, FieldType, KindSchema, Role};

use crate::common::{password, user};

fn profile(k: KindSchema) -> KindSchema {
    k.param(Field::optional(
        "given_name",
        FieldType::String,
        "First name.",
    ))
    .param(Field::optional("surname", FieldType::String, "Last name."))
    .param(Field::optional(
        "department",
        FieldType::String,
        "Department.",
    ))
    .param(Field::optional(
        "job_title",
        FieldType::String,
        "Job title.",
    ))
    .param(Field::optional(
        "usage_location",
        FieldType::String,
        "Two-letter country code; required before a licence can be assigned.",
    ))
    .param(Field::optional(
        "office_location",
        FieldType::String,
        "Office.",
    ))
    .param(Field::optional(
        "company_name",
        FieldType::String,
        "Company name.",
    ))
    .param(Field::optional(
        "employee_id",
        FieldType::String,
        "HR employee id.",
    ))
    .param(Field::optional(
        "mobile_phone",
        FieldType::String,
        "Mobile phone number.",
    ))
}

/// What `entra.update_user`'s `clear` may name: the profile fields Graph lets a PATCH set to
/// null (the display name is required, so not among them), and `manager`.
pub const CLEARABLE: &[&str] = &[
    "given_name",
    "surname",
    "department",
    "job_title",
    "usage_location",
    "office_location",
    "company_name",
    "employee_id",
    "mobile_phone",
    "manager",
];

fn user_action(kind: &str, description: &str) -> KindSchema {
    KindSchema::action(kind, description)
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .output_role("id", Role::Subject)
}

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        profile(
            KindSchema::action(
                "entra.create_user",
                "Create a cloud user; adopts the user if this run created it already.",
            )
.effect(Effect::CreatesAccount)
            .param(Field::required(
                "user_principal_name",
                FieldType::String,
                "Sign-in name on a verified domain of the tenant.",
            ))
            .param(Field::required(
                "display_name",
                FieldType::String,
                "Display name.",
            ))
            .param(Field::optional(
                "mail_nickname",
                FieldType::String,
                "Mail alias (default: the UPN's local part).",
            ))
            .param(Field::optional(
                "alternatives",
                FieldType::list(FieldType::String),
                "Sign-in names to use, in order, when `user_principal_name` already belongs to someone else (`jose.nunez2@...`): the first free one is taken, not a failure. The output `user_principal_name` says which.",
            )),
        )
        .param(Field::optional(
            "manager",
            FieldType::String,
            "The manager's object id or UPN: looked up before the user is created, set after (`PUT /users/{id}/manager/$ref`).",
        ))
        .param(
            Field::optional(
                "account_enabled",
                FieldType::Bool,
                "Whether sign-in is allowed at once.",
            )
            .default(json!(true)),
        )
        .param(password())
        .param(
            Field::optional(
                "password_length",
                FieldType::Int,
                "Length of a generated password.",
            )
            .default(json!(16)),
        )
        .param(
            Field::optional(
                "force_change_password",
                FieldType::Bool,
                "Require a new password at first sign-in.",
            )
            .default(json!(true)),
        )
        .output("id", FieldType::String, "The new user's object id.")
        .output_role("id", Role::Subject)
        .output(
            "user_principal_name",
            FieldType::String,
            "The user principal name: `user_principal_name`, or the first free one of `alternatives`.",
        )
        .output_role("user_principal_name", Role::Subject)
        .output(
            "password",
            FieldType::Secret,
            "The initial password (a secret: shown as ***).",
        )
        .output(
            "created",
            FieldType::Bool,
            "False when an existing user created by this run was adopted.",
        ),
        profile(
            user_action("entra.update_user", "Update a user's profile fields.").param(
                Field::optional("display_name", FieldType::String, "Display name."),
            ),
        )
        .param(Field::optional(
            "clear",
            FieldType::list(FieldType::one_of(CLEARABLE)),
            "Profile fields to empty (sent to Graph as null; one already empty is left alone), and `manager` to remove the manager. A field may not be both set and cleared; the display name cannot be cleared.",
        ))
        .output(
            "changed",
            FieldType::list(FieldType::String),
            "The fields that changed: set, cleared, and `manager` when it was removed.",
        ),
        user_action(
            "entra.disable_sign_in",
            "Block sign-in (accountEnabled = false).",
        )
.effect(Effect::SecuresAccount)
        .output(
            "changed",
            FieldType::Bool,
            "False when sign-in was already blocked.",
        ),
        user_action(
            "entra.enable_sign_in",
            "Allow sign-in (accountEnabled = true).",
        )
        .output(
            "changed",
            FieldType::Bool,
            "False when sign-in was already allowed.",
        ),
        user_action(
            "entra.revoke_sessions",
            "Revoke every refresh token and session of the user.",
        )
.effect(Effect::SecuresAccount)
        .output(
            "revoked",
            FieldType::Bool,
            "False when this step had revoked them already (a repeated attempt).",
        ),
        user_action("entra.reset_password", "Set a new password.")
.effect(Effect::Destructive)
.effect(Effect::SecuresAccount)
            .param(password())
            .param(
                Field::optional(
                    "force_change_password",
                    FieldType::Bool,
                    "Require a new password at next sign-in.",
                )
                .default(json!(true)),
            )
            .output(
                "password",
                FieldType::Secret,
                "The new password (a secret: shown as ***).",
            ),
        user_action(
            "entra.delete_user",
            "Delete the user (soft delete: restorable for 30 days).",
        )
.effect(Effect::Destructive)
        .output(
            "deleted",
            FieldType::Bool,
            "False when the user was already gone.",
        ),
        user_action(
            "entra.restore_user",
            "Bring a former employee's account back: the live account with that name (disabled or not) as it is, else the newest deleted one restored from the deleted items (kept 30 days); never a second account.",
        )
        .output(
            "user_principal_name",
            FieldType::String,
            "The account's user principal name.",
        )
        .output_role("user_principal_name", Role::Subject)
        .output(
            "restored",
            FieldType::Bool,
            "True when it came back from the deleted items; false when it was live.",
        )
        .output(
            "was_enabled",
            FieldType::Bool,
            "Whether it could sign in before this step (a restored account could not).",
        ),
                user_action("entra.set_manager", "Set the user's manager.")
            .param(Field::required(
                "manager",
                FieldType::String,
                "The manager's object id or UPN.",
            ))
            .output("manager_id", FieldType::String, "The manager's object id.")
            .output(
                "changed",
                FieldType::Bool,
                "False when the manager was already set.",
            ),
        user_action(
            "entra.remove_auth_methods",
            "Remove the user's MFA methods (phone, authenticator, FIDO2, ...).",
        )
.effect(Effect::SecuresAccount)
        .param(Field::optional(
            "keep",
            FieldType::list(FieldType::String),
            "Method types to keep, e.g. `password`.",
        ))
        .output(
            "removed",
            FieldType::list(FieldType::String),
            "The methods removed.",
        ),
        user_action("entra.create_tap", "Issue a Temporary Access Pass.")
            .param(
                Field::optional(
                    "lifetime",
                    FieldType::Duration,
                    "How long the pass is valid.",
                )
                .default(json!("1h")),
            )
            .param(
                Field::optional(
                    "usable_once",
                    FieldType::Bool,
                    "Whether it works for one sign-in only.",
                )
                .default(json!(true)),
            )
            .output(
                "pass",
                FieldType::Secret,
                "The pass (a secret: shown as ***).",
            )
            .output("expires_at", FieldType::Datetime, "When it stops working."),
        KindSchema::action(
            "entra.add_to_group",
            "Add the user to a group; already a member is success.",
        )
        .param(user())
        .param(Field::required(
            "group",
            FieldType::String,
            "The group's display name or object id.",
        ))
        .output("group_id", FieldType::String, "The group's object id.")
        .output(
            "added",
            FieldType::Bool,
            "False when the user was already a member.",
        ),
        KindSchema::action(
            "entra.remove_from_group",
            "Remove the user from a group; not a member is success.",
        )
        .param(user())
        .param(Field::required(
            "group",
            FieldType::String,
            "The group's display name or object id.",
        ))
        .output("group_id", FieldType::String, "The group's object id.")
        .output(
            "removed",
            FieldType::Bool,
            "False when the user was not a member.",
        ),
        KindSchema::action(
            "entra.remove_from_all_groups",
            "Remove the user from every group with direct membership.",
        )
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .output_role("id", Role::Subject)
        .param(
            Field::optional(
                "keep",
                FieldType::list(FieldType::String),
                "Groups to keep.",
            )
            .default(json!([])),
        )
        .output(
            "removed",
            FieldType::list(FieldType::String),
            "The groups left.",
        )
        .output(
            "skipped",
            FieldType::list(FieldType::String),
            "Dynamic or synced groups that cannot be changed here.",
        ),
        KindSchema::action(
            "entra.copy_groups_from",
            "Add the user to every group another user is in.",
        )
        .param(user())
        .output("id", FieldType::String, "The user's object id.")
        .output_role("id", Role::Subject)
        .param(Field::required(
            "from",
            FieldType::String,
            "The user to copy from (object id or UPN).",
        ))
        .param(
            Field::optional(
                "exclude",
                FieldType::list(FieldType::String),
                "Groups not to copy.",
            )
            .default(json!([])),
        )
        .output(
            "added",
            FieldType::list(FieldType::String),
            "The groups joined.",
        ),
    ]
}
