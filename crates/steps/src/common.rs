//! Parameter shapes many kinds share, so each is described the same way everywhere.

use tenure_runbook::{Field, FieldType, Role};

/// `user`: the user an Entra, licence, Exchange or Intune step acts on.
pub fn user() -> Field {
    Field::required(
        "user",
        FieldType::String,
        "The user: an object id (e.g. `{{steps.create_user.outputs.id}}`) or a user principal name.",
    )
    .role(Role::Subject)
}

/// `provider`: which PSA a `psa.*` step talks to.
pub fn provider() -> Field {
    Field::optional(
        "provider",
        FieldType::one_of(&["halo", "connectwise", "autotask"]),
        "The PSA to talk to; defaults to `[psa] provider` in the config.",
    )
}

/// A generated or given password.
pub fn password() -> Field {
    Field::optional(
        "password",
        FieldType::String,
        "`generate` for a new random password, or a template naming a secret.",
    )
    .default(serde_json::json!("generate"))
}
