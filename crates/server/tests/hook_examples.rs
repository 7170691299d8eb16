//! The example deliveries in `examples/webhooks/` (a new starter and a leaver from HaloPSA,
//! ConnectWise, Autotask and a generic source), each signed as its sender signs, posted to a
//! server with the stock runbooks: which runbook each starts and with which inputs is held to a
//! snapshot in `tests/data/webhooks/` (refresh with `UPDATE_EXPECT=1` and review the diff).
//! Each is then delivered again and must answer the same run.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::*;
use tenure_server::config::WebhookKind;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stock(name: &str) -> String {
    std::fs::read_to_string(root().join("runbooks").join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_starts_the_expected_runbook_with_the_expected_inputs() {
    let sandbox = tenure_sandbox::Sandbox::new();
    let (addr, _task) = sandbox.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let cw_base = format!("http://{addr}/api-na.myconnectwise.net");

    std::env::set_var("EXAMPLES_HALO_PW", "halo-pass");
    std::env::set_var("EXAMPLES_AT", "autotask-secret-key");
    std::env::set_var("EXAMPLES_INTAKE", "intake-secret");
    let mut halo = source("halo", WebhookKind::Halo);
    halo.username = Some("halo".into());
    halo.password_env = Some("EXAMPLES_HALO_PW".into());
    let mut cw = source("connectwise", WebhookKind::Connectwise);
    cw.key_host = Some(format!("{cw_base}/"));
    cw.client_id = Some("tenure-sandbox".into());
    let mut at = source("autotask", WebhookKind::Autotask);
    at.secret_env = Some("EXAMPLES_AT".into());
    let mut intake = source("intake", WebhookKind::Generic);
    intake.secret_env = Some("EXAMPLES_INTAKE".into());
    intake.dedup = Some("{{payload.request_id}}".into());
    intake.requester = Some("{{payload.requested_by}}".into());
    let (onboard, offboard) = (stock("onboard-user.yaml"), stock("offboard-user.yaml"));
    let s = start(
        vec![halo, cw, at, intake],
        &[
            ("onboard-user.yaml", &onboard),
            ("offboard-user.yaml", &offboard),
        ],
    )
    .await;

    let examples = root().join("examples/webhooks");
    let expected_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/webhooks");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let mut seen = 0;
    for kind in ["halo", "connectwise", "autotask", "generic"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(examples.join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        assert!(files.len() >= 2, "{kind}: a new starter and a leaver");
        for file in files {
            seen += 1;
            let mut body = std::fs::read(&file).unwrap();
            let (source, headers): (&str, Vec<(&str, String)>) = match kind {
                "halo" => ("halo", vec![("authorization", basic("halo", "halo-pass"))]),
                "connectwise" => {
                    // The example names the real site; here the key is the sandbox's.
                    let text = String::from_utf8(body)
                        .unwrap()
                        .replace("https://api-na.myconnectwise.net", &cw_base);
                    body = text.into_bytes();
                    let payload: Value = serde_json::from_slice(&body).unwrap();
                    let key_url = payload["Metadata"]["key_url"].as_str().unwrap();
                    let id = key_url.rsplit('/').next().unwrap();
                    let key = tenure_sandbox::connectwise_callback_signing_key(id);
                    (
                        "connectwise",
                        vec![("x-content-signature", connectwise_signature(&key, &body))],
                    )
                }
                "autotask" => (
                    "autotask",
                    vec![(
                        "x-hook-signature",
                        autotask_signature("autotask-secret-key", &body),
                    )],
                ),
                _ => (
                    "intake",
                    vec![(
                        "x-tenure-signature",
                        generic_signature("intake-secret", &body),
                    )],
                ),
            };
            let (status, answer) = s.post(source, &body, &headers).await;
            let mut runs = Vec::new();
            for id in answer["run_ids"].as_array().cloned().unwrap_or_default() {
                let run = s.engine.run(id.as_str().unwrap()).await.unwrap();
                runs.push(json!({
                    "runbook": run.plan.runbook,
                    "trigger": run.context["trigger"]["source"],
                    "by": run.context["trigger"]["by"],
                    "inputs": run.context["inputs"],
                }));
            }
            let got = json!({"status": status, "error": answer.get("error"), "runs": runs});
            let (again, repeat) = s.post(source, &body, &headers).await;
            if status == 202 && (again != 200 || repeat["run_id"] != answer["run_id"]) {
                failures.push(format!(
                    "{}: a repeat answered {again} {repeat}",
                    file.display()
                ));
            }
            let name = format!(
                "{kind}-{}.json",
                file.file_stem().unwrap().to_string_lossy()
            );
            let path = expected_dir.join(&name);
            let text = format!("{}\n", serde_json::to_string_pretty(&got).unwrap());
            if update {
                std::fs::create_dir_all(&expected_dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else {
                match std::fs::read_to_string(&path) {
                    Ok(want) if want == text => {}
                    Ok(want) => failures.push(format!(
                        "{name} differs:\n--- expected\n{want}\n+++ got\n{text}"
                    )),
                    Err(_) => failures.push(format!(
                        "{name} is missing (UPDATE_EXPECT=1 writes it):\n{text}"
                    )),
                }
            }
        }
    }
    assert_eq!(seen, 8);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
