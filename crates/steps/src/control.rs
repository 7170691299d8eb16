//! Control kinds: `approval` and `wait` park a run (the engine runs them itself);
//! `http.request` (run by `tenure-kinds`) and `runbook.call` (run by the engine: it parks the step until the called run ends) cover what
//! no vendor kind does.

use serde_json::json;
use tenure_runbook::{Field, FieldType, KindClass, KindSchema, Role};

/// The schemas of this module's kinds.
pub fn schemas() -> Vec<KindSchema> {
    vec![
        KindSchema::action(
            "approval",
            "Pause until the quorum approves, anyone denies, or the request expires.",
        )
        .class(KindClass::Approval)
        .param(Field::required(
            "approvers",
            FieldType::list(FieldType::Email),
            "Who may decide; each gets a signed link (the person who requested the run may not decide).",
        ))
        .param(
            Field::optional(
                "quorum",
                FieldType::Int,
                "Approvals needed; any deny decides.",
            )
            .default(json!(1)),
        )
        .param(
            Field::optional(
                "expires",
                FieldType::Duration,
                "How long the links stay valid.",
            )
            .default(json!("48h")),
        )
        .param(
            Field::optional(
                "on_expiry",
                FieldType::one_of(&["deny", "approve", "fail"]),
                "What an expired request resolves as.",
            )
            .default(json!("deny")),
        )
        .param(
            Field::optional(
                "notify",
                FieldType::list(FieldType::one_of(&["teams", "email"])),
                "Where each approver is sent their link: a Teams card, an email, both, or `[]` for neither.",
            )
            .default(json!(["email"])),
        )
        .param(Field::required(
            "message",
            FieldType::String,
            "What is asked, in Markdown.",
        ).role(Role::Publishes))
        .output(
            "decision",
            FieldType::one_of(&["approved", "denied", "expired"]),
            "How the gate resolved.",
        )
        .output(
            "decided_by",
            FieldType::list(FieldType::Email),
            "Who decided.",
        )
        .output(
            "comment",
            FieldType::String,
            "The deciding approver's comment.",
        ),
        KindSchema::action("wait", "Pause until a datetime, or for a duration.")
            .class(KindClass::Wait)
            .param(Field::optional(
                "until",
                FieldType::Datetime,
                "Resume at this RFC 3339 datetime.",
            ))
            .param(Field::optional(
                "for",
                FieldType::Duration,
                "Resume after this long.",
            ))
            .output("resumed_at", FieldType::Datetime, "When the wait ended."),
        KindSchema::action(
            "http.request",
            "Any REST call, for what no built-in kind covers.",
        )
        .param(
            Field::optional(
                "method",
                FieldType::one_of(&["GET", "POST", "PUT", "PATCH", "DELETE"]),
                "HTTP method.",
            )
            .default(json!("GET")),
        )
        .param(Field::required("url", FieldType::String, "Absolute URL."))
        .param(Field::optional(
            "headers",
            FieldType::Object,
            "Request headers; use `{{secrets.x}}` for credentials.",
        ))
        .param(Field::optional("json", FieldType::Any, "A JSON body.").role(Role::Publishes))
        .param(Field::optional(
            "expect_status",
            FieldType::list(FieldType::Int),
            "Statuses that count as success (default: any 2xx).",
        ))
        .output("status", FieldType::Int, "The response status.")
        .output(
            "body",
            FieldType::Any,
            "The response body (JSON if it parses, else text).",
        ),
        KindSchema::action(
            "runbook.call",
            "Run another runbook as one step and wait for it: the step parks (no worker, no polling) until the called run ends, succeeds with its outputs if it succeeded, and fails with its failing step and error otherwise.",
        )
        .param(Field::required(
            "runbook",
            FieldType::String,
            "The id of the runbook to run (a literal: it is compiled with this one, from the same directory).",
        ))
        .param(Field::optional(
            "inputs",
            FieldType::Object,
            "Its inputs, checked against its declared inputs (templates allowed in values).",
        ).role(Role::Publishes))
        .param(Field::optional(
            "version",
            FieldType::Int,
            "The called runbook's version this call expects (compile error if it differs).",
        ))
        .output("run_id", FieldType::String, "The child run's id.")
        .output("status", FieldType::String, "The child run's final status (`succeeded`).")
        .output(
            "outputs",
            FieldType::Object,
            "The child run's step outputs by step id (`outputs.STEP.NAME`; a list for a `for_each` step); secret outputs stay sealed.",
        ),
    ]
}
