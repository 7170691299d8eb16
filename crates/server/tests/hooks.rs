//! `POST /hooks/{source}` over real HTTP: each verification kind accepts a right signature and
//! refuses a wrong or missing one (401, nothing created); unknown source 404, oversized 413,
//! malformed JSON 400, no trigger 422, invalid inputs 422; a repeated delivery answers the
//! same run, also when 20 arrive at once.

mod support;

use serde_json::{json, Value};
use support::*;
use tenure_server::config::WebhookKind;

const RUNBOOK: &str = r#"
runbook: leaver
version: 1
tenant: "{{inputs.tenant}}"
inputs:
  tenant: { type: string, required: true }
  user: { type: email, required: true }
  ticket_id: { type: string }
triggers:
  - webhook: halo
    when: "{{eq payload.event 'leaver'}}"
    map: { tenant: "{{payload.tenant}}", user: "{{payload.user}}", ticket_id: "{{payload.id}}" }
  - webhook: intake
    when: "{{eq payload.event 'leaver'}}"
    map: { tenant: "{{payload.tenant}}", user: "{{payload.user}}", ticket_id: "{{payload.id}}" }
  - webhook: at
    when: "{{eq payload.Fields.queueID 8}}"
    map: { tenant: contoso, user: "{{field payload.Fields.description 'User'}}", ticket_id: "{{payload.Id}}" }
  - webhook: cw
    when: "{{eq payload.Entity.type.name 'Leaver'}}"
    map: { tenant: contoso, user: "{{field payload.Entity.initialDescription 'User'}}", ticket_id: "{{payload.ID}}" }
steps:
  hold:
    uses: wait
    with: { for: 1s }
"#;

fn halo_source() -> tenure_server::config::WebhookSource {
    std::env::set_var("HOOKS_T_HALO_PW", "halo-pass");
    std::env::set_var("HOOKS_T_HALO_TOKEN", "halo-token");
    let mut s = source("halo", WebhookKind::Halo);
    s.username = Some("halo".into());
    s.password_env = Some("HOOKS_T_HALO_PW".into());
    s.token_env = Some("HOOKS_T_HALO_TOKEN".into());
    s.dedup = Some("{{payload.id}}-{{payload.event}}".into());
    s.requester = Some("{{payload.requester}}".into());
    s
}

fn intake_source() -> tenure_server::config::WebhookSource {
    std::env::set_var("HOOKS_T_INTAKE", "intake-secret");
    let mut s = source("intake", WebhookKind::Generic);
    s.secret_env = Some("HOOKS_T_INTAKE".into());
    s.dedup = Some("{{payload.id}}".into());
    s
}

fn at_source() -> tenure_server::config::WebhookSource {
    std::env::set_var("HOOKS_T_AT", "autotask-secret-key");
    let mut s = source("at", WebhookKind::Autotask);
    s.secret_env = Some("HOOKS_T_AT".into());
    s
}

async fn server() -> Server {
    start(
        vec![halo_source(), intake_source(), at_source()],
        &[("leaver.yaml", RUNBOOK)],
    )
    .await
}

fn leaver(id: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "event": "leaver", "tenant": "contoso", "user": "jane.doe@contoso.example", "requester": "sam@contoso.example"})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halo_basic_and_bearer_are_accepted_and_anything_else_refused() {
    let s = server().await;
    let body = leaver(1);
    for bad in [
        vec![],
        vec![("authorization", basic("halo", "wrong"))],
        vec![("authorization", basic("other", "halo-pass"))],
        vec![("authorization", "Bearer nope".to_string())],
        vec![("authorization", "halo-token".to_string())],
    ] {
        let (status, answer) = s.post("halo", &body, &bad).await;
        assert_eq!(status, 401, "{bad:?}: {answer}");
        assert_eq!(answer["error"]["code"], "unverified");
        let msg = answer["error"]["message"].as_str().unwrap();
        assert!(
            !msg.contains("halo-pass") && !msg.contains("halo-token"),
            "{msg}"
        );
    }
    assert_eq!(s.run_count().await, 0);
    let (status, answer) = s
        .post(
            "halo",
            &body,
            &[("authorization", basic("halo", "halo-pass"))],
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let run = s
        .engine
        .run(answer["run_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(run.plan.runbook, "leaver");
    assert_eq!(run.context["inputs"]["user"], "jane.doe@contoso.example");
    assert_eq!(run.context["inputs"]["ticket_id"], "1");
    assert_eq!(run.context["trigger"]["by"], "sam@contoso.example");
    assert_eq!(run.context["trigger"]["payload"]["event"], "leaver");
    let (status, answer) = s
        .post(
            "halo",
            &leaver(2),
            &[("authorization", "Bearer halo-token".into())],
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(s.run_count().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_hmac_is_checked_over_the_raw_body() {
    let s = server().await;
    let body = leaver(3);
    let good = generic_signature("intake-secret", &body);
    for bad in [
        vec![],
        vec![("x-tenure-signature", generic_signature("other", &body))],
        vec![(
            "x-tenure-signature",
            generic_signature("intake-secret", &leaver(4)),
        )],
        vec![(
            "x-tenure-signature",
            good.trim_start_matches("sha256=").to_string(),
        )],
    ] {
        let (status, answer) = s.post("intake", &body, &bad).await;
        assert_eq!(status, 401, "{answer}");
    }
    assert_eq!(s.run_count().await, 0);
    let (status, answer) = s
        .post("intake", &body, &[("x-tenure-signature", good)])
        .await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autotask_signature_is_checked() {
    let s = server().await;
    let body = serde_json::to_vec(&json!({
        "Action": "Create", "Guid": "f3c1", "EntityType": "Ticket", "Id": 7001, "SequenceNumber": 1,
        "Fields": {"queueID": 8, "description": "User: jane.doe@contoso.example"}
    }))
    .unwrap();
    for bad in [
        vec![],
        vec![("x-hook-signature", autotask_signature("nope", &body))],
        vec![(
            "x-hook-signature",
            autotask_signature("autotask-secret-key", b"{}"),
        )],
    ] {
        let (status, _) = s.post("at", &body, &bad).await;
        assert_eq!(status, 401);
    }
    assert_eq!(s.run_count().await, 0);
    let sig = autotask_signature("autotask-secret-key", &body);
    let (status, answer) = s
        .post("at", &body, &[("x-hook-signature", sig.clone())])
        .await;
    assert_eq!(status, 202, "{answer}");
    let run = s
        .engine
        .run(answer["run_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(run.context["inputs"]["user"], "jane.doe@contoso.example");
    assert_eq!(run.context["inputs"]["ticket_id"], "7001");
    // The default dedup key (ticket id + sequence number) finds the same run again.
    let (status, again) = s.post("at", &body, &[("x-hook-signature", sig)]).await;
    assert_eq!(
        (status, &again["run_id"], &again["duplicate"]),
        (200, &answer["run_id"], &json!(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectwise_callbacks_are_verified_with_the_key_behind_key_url() {
    let sandbox = tenure_sandbox::Sandbox::new();
    let (addr, task) = sandbox.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let base = format!("http://{addr}");
    let mut cw = source("cw", WebhookKind::Connectwise);
    cw.key_host = Some(format!("{base}/api-na.myconnectwise.net/"));
    cw.client_id = Some("tenure-sandbox".into());
    let s = start(vec![cw], &[("leaver.yaml", RUNBOOK)]).await;
    let entity = json!({"id": 5001, "summary": "Leaver", "type": {"name": "Leaver"}, "status": {"name": "New"},
                        "initialDescription": "User: jane.doe@contoso.example"});
    let payload = |key_url: &str| {
        serde_json::to_vec(&json!({
            "MessageId": "0b7f", "FromUrl": "api-na.myconnectwise.net", "CompanyId": "tenure", "MemberId": "admin",
            "Action": "added", "Type": "ticket", "ID": 5001, "Entity": entity.to_string(),
            "Metadata": {"key_url": key_url}
        }))
        .unwrap()
    };
    let key_url = format!(
        "{base}{}",
        tenure_sandbox::connectwise_callback_key_path("k1")
    );
    let key = tenure_sandbox::connectwise_callback_signing_key("k1");
    // The sandbox gives the key only to the integration's clientId, as ConnectWise does.
    let plain = reqwest::get(&key_url).await.unwrap();
    assert_eq!(plain.status().as_u16(), 401);
    let served: Value = reqwest::Client::new()
        .get(&key_url)
        .header("clientId", "tenure-sandbox")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["signing_key"], key.as_str());
    let body = payload(&key_url);
    let good = connectwise_signature(&key, &body);
    // Unsigned, wrongly signed, and signed with a key served from an untrusted place.
    let evil = payload(&format!("{base}/elsewhere/k1"));
    for (b, sig) in [
        (&body, None),
        (&body, Some(connectwise_signature("guess", &body))),
        (&body, Some(connectwise_signature(&key, b"{}"))),
        (&evil, Some(connectwise_signature(&key, &evil))),
    ] {
        let headers: Vec<(&str, String)> = sig
            .into_iter()
            .map(|s| ("x-content-signature", s))
            .collect();
        let (status, answer) = s.post("cw", b, &headers).await;
        assert_eq!(status, 401, "{answer}");
    }
    assert_eq!(s.run_count().await, 0);
    let (status, answer) = s
        .post("cw", &body, &[("x-content-signature", good.clone())])
        .await;
    assert_eq!(status, 202, "{answer}");
    let run = s
        .engine
        .run(answer["run_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(run.context["inputs"]["user"], "jane.doe@contoso.example");
    assert_eq!(run.context["inputs"]["ticket_id"], "5001");
    // The key is cached: the sandbox gone, a redelivery still verifies (and is a duplicate).
    task.abort();
    let (status, again) = s.post("cw", &body, &[("x-content-signature", good)]).await;
    assert_eq!(
        (status, &again["run_id"]),
        (200, &answer["run_id"]),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_get_a_4xx_that_says_why_and_create_nothing() {
    let s = server().await;
    let auth = || vec![("authorization", basic("halo", "halo-pass"))];
    let (status, answer) = s.post("nope", &leaver(1), &auth()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_source"))
    );
    let big = vec![b' '; tenure_server::hooks::MAX_BODY + 1];
    let (status, answer) = s.post("halo", &big, &auth()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{answer}"
    );
    let (status, answer) = s.post("halo", b"{\"id\": 1,", &auth()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{answer}"
    );
    let other = serde_json::to_vec(&json!({"id": 9, "event": "new_starter"})).unwrap();
    let (status, answer) = s.post("halo", &other, &auth()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("no_match")),
        "{answer}"
    );
    let invalid = serde_json::to_vec(
        &json!({"id": 9, "event": "leaver", "tenant": "contoso", "user": "not-an-email"}),
    )
    .unwrap();
    let (status, answer) = s.post("halo", &invalid, &auth()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_inputs")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user"),
        "{answer}"
    );
    let missing =
        serde_json::to_vec(&json!({"id": 9, "event": "leaver", "tenant": "contoso"})).unwrap();
    let (status, answer) = s.post("halo", &missing, &auth()).await;
    assert_eq!(status, 422, "{answer}");
    let unknown_tenant = serde_json::to_vec(
        &json!({"id": 9, "event": "leaver", "tenant": "nowhere", "user": "a@b.example"}),
    )
    .unwrap();
    let (status, answer) = s.post("halo", &unknown_tenant, &auth()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_inputs")),
        "{answer}"
    );
    assert_eq!(s.run_count().await, 0);
}

/// A map that reads a field of a payload that is a list (or through a list) finds nothing
/// there: the input is left out, as for any absent field, not refused with the template
/// engine's internals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_read_from_a_list_is_absent() {
    const LIST: &str = "runbook: listed\nversion: 1\ntenant: contoso\ninputs:\n  ticket: { type: string }\ntriggers:\n  - webhook: list\n    map: { ticket: \"{{payload.ticket}}\" }\nsteps:\n  hold:\n    uses: wait\n    with: { for: 1s }\n";
    std::env::set_var("HOOKS_T_LIST", "list-secret");
    let mut src = source("list", WebhookKind::Generic);
    src.secret_env = Some("HOOKS_T_LIST".into());
    let s = start(vec![src], &[("listed.yaml", LIST)]).await;
    let body = br#"[{"ticket": "T-1"}]"#.to_vec();
    let sig = generic_signature("list-secret", &body);
    let (status, answer) = s
        .post("list?dry_run=true", &body, &[("x-tenure-signature", sig)])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["runs"][0]["inputs"], json!({}), "{answer}");
}

/// A payload value mapped into a secret input is sealed in the stored trigger payload too:
/// it is not kept in clear with the run, and searching runs for it finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_mapped_from_a_payload_is_sealed_in_the_stored_payload() {
    const SEALED: &str = "runbook: sealed\nversion: 1\ntenant: contoso\ninputs:\n  password: { type: secret }\ntriggers:\n  - webhook: vault\n    map: { password: \"{{payload.password}}\" }\nsteps:\n  hold:\n    uses: wait\n    with: { for: 1s }\n";
    std::env::set_var("HOOKS_T_VAULT", "vault-secret");
    let mut src = source("vault", WebhookKind::Generic);
    src.secret_env = Some("HOOKS_T_VAULT".into());
    let s = start(vec![src], &[("sealed.yaml", SEALED)]).await;
    let body = br#"{"password": "Hunter2-Very-Secret", "ticket": 7}"#.to_vec();
    let sig = generic_signature("vault-secret", &body);
    let (status, answer) = s.post("vault", &body, &[("x-tenure-signature", sig)]).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["run_id"].as_str().unwrap();
    let record = s.engine.run(id).await.unwrap();
    let stored = record.context.to_string();
    assert!(!stored.contains("Hunter2-Very-Secret"), "{stored}");
    assert_eq!(record.context["trigger"]["payload"]["ticket"], 7);
    let found = s
        .engine
        .runs(&tenure_engine::store::RunFilter {
            text: Some("Hunter2-Very-Secret".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(found.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_maps_but_starts_nothing() {
    let s = server().await;
    let auth = vec![("authorization", basic("halo", "halo-pass"))];
    let (status, answer) = s.post("halo?dry_run=true", &leaver(7), &auth).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["runs"][0]["runbook"], "leaver");
    assert_eq!(
        answer["runs"][0]["inputs"]["user"],
        "jane.doe@contoso.example"
    );
    let (status, _) = s.post("halo?dry_run=true", &leaver(7), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(s.run_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_delivery_answers_the_same_run() {
    let s = server().await;
    let auth = vec![("authorization", basic("halo", "halo-pass"))];
    let (status, first) = s.post("halo", &leaver(5), &auth).await;
    assert_eq!(status, 202);
    assert_eq!(first.get("duplicate"), None);
    let (status, again) = s.post("halo", &leaver(5), &auth).await;
    assert_eq!(status, 200);
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(s.run_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_duplicates_create_one_run() {
    twenty_at_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_duplicates_create_one_run_on_postgres() {
    if postgres().is_some() {
        twenty_at_once(true).await;
    }
}

async fn twenty_at_once(pg: bool) {
    let s = std::sync::Arc::new(
        start_on(
            pg,
            vec![halo_source(), intake_source(), at_source()],
            &[("leaver.yaml", RUNBOOK)],
        )
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.post(
                "intake",
                &leaver(6),
                &[(
                    "x-tenure-signature",
                    generic_signature("intake-secret", &leaver(6)),
                )],
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, answer): (u16, Value) = t.await.unwrap();
        assert!(status == 202 || status == 200, "{status} {answer}");
        created += usize::from(status == 202);
        ids.insert(answer["run_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    assert_eq!(s.run_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_variable_stops_the_start_naming_it() {
    let mut s = source("x", WebhookKind::Generic);
    s.secret_env = Some("HOOKS_T_NEVER_SET".into());
    let err = tenure_server::hooks::Sources::load(&[s])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HOOKS_T_NEVER_SET") && err.contains("`x`"),
        "{err}"
    );
    let mut h = source("h", WebhookKind::Halo);
    h.username = Some("u".into());
    let err = tenure_server::hooks::Sources::load(&[h])
        .unwrap_err()
        .to_string();
    assert!(err.contains("password_env"), "{err}");
}
