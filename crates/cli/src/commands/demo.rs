//! `tenure demo`: the whole product in one process on embedded defaults. It starts the
//! built-in sandbox (a simulated Microsoft 365 tenant with HaloPSA, Teams, an SMTP listener and
//! Password Pusher), a SQLite database and `tenure serve` (webhooks, approval links, the web
//! UI), then:
//!
//! 1. sends the example HaloPSA new-starter webhook (`examples/webhooks/halo/new-starter.json`),
//!    prints the approval link the approver received and the run's page in the web UI, and
//!    waits for the approval in the browser, or with `--auto-approve` follows the link over
//!    HTTP as the approver would (GET the page, POST its form);
//! 2. shows the run live, then its report, the one-time password link, the ticket note and
//!    the messages as the sandbox received them;
//! 3. sends the leaver webhook for the same person and does the same for the offboarding.
//!
//! The database is the one given with `--db`, else a fresh SQLite file in a temporary
//! directory removed when the demo ends, however it ends. `--keep-serving` leaves the server
//! up afterwards for the browser (a sign-in token is printed) until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tenure_server::config::{
    Role, ServerConfig, ServerSection, TokenEntry, WebhookKind, WebhookSource,
};
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry};

use super::out::say;
use crate::load;

/// The runbooks the demo serves when there is no `runbooks/` directory here (the demo works
/// from any directory): (file, text).
const BUILT_IN: [(&str, &str); 2] = [
    (
        "onboard-user.yaml",
        include_str!("../../../../runbooks/onboard-user.yaml"),
    ),
    (
        "offboard-user.yaml",
        include_str!("../../../../runbooks/offboard-user.yaml"),
    ),
];
/// The example tickets, as HaloPSA sends them.
const NEW_STARTER: &str = include_str!("../../../../examples/webhooks/halo/new-starter.json");
const LEAVER: &str = include_str!("../../../../examples/webhooks/halo/leaver.json");
/// Whom the leaver example names; the demo puts the new hire in their place.
const LEAVER_EXAMPLE_USER: &str = "alex.wilber@contoso.example";

/// The environment variables the demo's server configuration names (set by the demo, for
/// itself, before any thread starts).
const HALO_PASSWORD_ENV: &str = "TENURE_DEMO_HALO_PASSWORD";
const TOKEN_ENV: &str = "TENURE_DEMO_UI_TOKEN";
const HALO_USER: &str = "tenure-demo";
/// The UI token's name: who the journal says acted when the browser does something.
const UI_USER: &str = "demo-admin";

/// How long the demo waits for a run (or a browser approval) before giving up.
const PATIENCE: Duration = Duration::from_secs(600);

/// Arguments of `tenure demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Approve as the approver would, over HTTP: open the link (GET), then post its form.
    /// Without it the demo waits for you to click the link in a browser.
    #[arg(long)]
    auto_approve: bool,
    /// Leave the server up when the demo is done (until Ctrl-C), to look around the web UI.
    #[arg(long)]
    keep_serving: bool,
    /// Where the server listens (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// The runbooks the demo serves: the `runbooks/` directory here if there is one, else the
/// built-in copies of the stock runbooks.
struct BuiltIn;

impl LibrarySource for BuiltIn {
    fn fingerprint(&self) -> u64 {
        0
    }

    fn load(&self) -> Library {
        let entries = BUILT_IN
            .iter()
            .map(|(file, text)| {
                let name = format!("{file} (built in)");
                let (plan, diagnostics) = self.compile(&name, text);
                RunbookEntry {
                    id: plan
                        .as_ref()
                        .map(|p| p.runbook.clone())
                        .unwrap_or_else(|| file.trim_end_matches(".yaml").to_string()),
                    path: name,
                    plan: plan.map(Arc::new),
                    diagnostics,
                    source: text.to_string(),
                }
            })
            .collect();
        Library { entries }
    }

    fn compile(&self, name: &str, text: &str) -> (Option<tenure_runbook::Plan>, Vec<String>) {
        let source = tenure_runbook::SourceFile::new(name, text);
        let output = tenure_runbook::compile(&source, &tenure_steps::catalogue());
        let diagnostics = output
            .diagnostics
            .iter()
            .map(|d| d.render(&source))
            .collect();
        (output.plan, diagnostics)
    }
}

/// `tenure demo`, recording into `db` if given (`--db`), else into a temporary database.
pub fn run(db: Option<&str>, args: Args) -> Result<ExitCode> {
    // The demo's own secrets, random per run, set before the runtime starts any thread.
    let halo_password = uuid::Uuid::new_v4().simple().to_string();
    let ui_token = uuid::Uuid::new_v4().simple().to_string();
    std::env::set_var(HALO_PASSWORD_ENV, &halo_password);
    std::env::set_var(TOKEN_ENV, &ui_token);
    // Removed when dropped: on return, on error, and on Ctrl-C (caught below).
    let (temp, db) = match db {
        Some(db) => (None, db.to_string()),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("tenure-demo-")
                .tempdir()
                .context("cannot create a temporary directory for the demo database")?;
            let db = format!("sqlite:{}", dir.path().join("demo.db").display());
            (Some(dir), db)
        }
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let secrets = Secrets {
        halo_password,
        ui_token,
    };
    let code = rt.block_on(async {
        tokio::select! {
            code = demo(&db, temp.is_some(), &args, &secrets) => code,
            () = super::serve::shutdown_signal() => {
                eprintln!("\ninterrupted");
                Ok(ExitCode::from(130))
            }
        }
    });
    // The runtime first (its tasks hold the database open), then the directory.
    drop(rt);
    drop(temp);
    code
}

struct Secrets {
    halo_password: String,
    ui_token: String,
}

/// The server's configuration for the demo: a HaloPSA source (`/hooks/halo`, HTTP Basic) and
/// one admin token for the web UI.
fn server_config(addr: &str) -> ServerConfig {
    ServerConfig {
        server: ServerSection {
            listen: Some(addr.to_string()),
            ..ServerSection::default()
        },
        webhooks: vec![WebhookSource {
            source: "halo".into(),
            kind: WebhookKind::Halo,
            username: Some(HALO_USER.into()),
            password_env: Some(HALO_PASSWORD_ENV.into()),
            token_env: None,
            secret_env: None,
            key_host: None,
            client_id: None,
            dedup: None,
            requester: None,
        }],
        tokens: vec![TokenEntry {
            name: UI_USER.into(),
            role: Role::Admin,
            token_env: TOKEN_ENV.into(),
        }],
    }
}

/// What the demo runs against: the sandbox, the server and its engine.
struct Stage {
    sandbox: String,
    base: String,
    engine: tenure_engine::Engine,
    http: reqwest::Client,
    halo_password: String,
}

async fn demo(db: &str, temporary: bool, args: &Args, secrets: &Secrets) -> Result<ExitCode> {
    let sandbox = tenure_sandbox::Sandbox::new();
    let (addr, _sandbox_server) = sandbox
        .serve("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the sandbox")?;
    let sandbox_url = format!("http://{addr}");
    let mut registry = tenure_engine::builtin::registry();
    let mut vendors = tenure_kinds::Vendors::sandbox(&sandbox_url);
    if let Some(smtp) = sandbox.smtp_addr() {
        vendors = vendors.with_smtp(
            tenure_kinds::SmtpConfig::sandbox(smtp),
            crate::config::SANDBOX_FROM,
        );
    }
    tenure_kinds::register(&mut registry, vendors);
    // Approvers get their signed links by Teams card and email wherever the gate opens.
    let slot = tenure_server::approvals::notify::LinkSlot::default();
    tenure_server::approvals::notify::wrap(&mut registry, slot.clone());
    let engine = super::runs::open_with(db, registry).await?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    let config = server_config(&bound.to_string());
    let links = tenure_server::approvals::Links::from_config(
        &config.server,
        engine.derive_key("approval-links"),
    )?;
    let _ = slot.set(links.clone());
    let library: Arc<dyn LibrarySource> = if std::path::Path::new(load::RUNBOOKS_DIR).is_dir() {
        Arc::new(super::serve::RunbookDir::new(std::path::Path::new(
            load::RUNBOOKS_DIR,
        )))
    } else {
        Arc::new(BuiltIn)
    };
    let state = AppState::try_new(engine.clone(), config, library)?.with_links(links);
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tenure_server::serve(state, listener, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{bound}");
    let shown = super::runs::redact_url(db);
    say!(
        "Tenure demo: sandbox at {sandbox_url}, {}database {shown}",
        if temporary { "temporary " } else { "" }
    );
    say!("Server (webhooks, approval links, web UI): {base}/ui");
    say!(
        "  the web UI's sign-in token for this demo: {}",
        secrets.ui_token
    );
    let stage = Stage {
        sandbox: sandbox_url,
        base,
        engine,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        halo_password: secrets.halo_password.clone(),
    };

    // 1. The new starter.
    say!(
        "\n== 1. A HaloPSA ticket asks for a new starter (examples/webhooks/halo/new-starter.json)"
    );
    let joiner = stage.deliver(NEW_STARTER).await?;
    let code = stage.through_approval(&joiner, args).await?;
    let record = stage.engine.run(&joiner).await?;
    let upn = record.context["vars"]["upn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ticket = record.context["inputs"]["ticket_id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            record.context["inputs"]["ticket_id"]
                .as_u64()
                .map(|n| n.to_string())
        })
        .unwrap_or_default();
    let sandbox_state = stage.sandbox_state().await?;
    stage.show_joiner(&joiner, &ticket, &sandbox_state).await?;
    if code != ExitCode::SUCCESS {
        bail!(
            "the onboarding run {joiner} did not succeed; its page: {}/ui/runs/{joiner}",
            stage.base
        );
    }

    // 2. The same person leaves.
    say!("\n== 2. A HaloPSA ticket says {upn} is leaving (examples/webhooks/halo/leaver.json)");
    let leaver_ticket = LEAVER.replace(LEAVER_EXAMPLE_USER, &upn);
    let leaver = stage.deliver(&leaver_ticket).await?;
    let code = stage.through_approval(&leaver, args).await?;
    let sandbox_state = stage.sandbox_state().await?;
    super::demo_summary::tenant_state(&sandbox_state, &upn);
    say!("\nThe offboarding report:\n");
    say!("{}", indent(&stage.engine.report(&leaver).await?.markdown));

    if args.keep_serving {
        say!(
            "\nThe server stays up at {}/ui (sign in with the token {}); Ctrl-C stops it.",
            stage.base,
            secrets.ui_token
        );
        let worker = stage.engine.worker(0);
        let serving = tokio::spawn(async move { worker.work_until(|| false).await });
        std::future::pending::<()>().await;
        drop(serving);
    } else if temporary {
        say!(
            "\nThe demo's database was temporary and is removed now; to keep the runs, give one \
             (tenure --db sqlite:demo.db demo), or look around the web UI with --keep-serving."
        );
    } else {
        say!("\nThe full logs: tenure --db {shown} log {joiner}, tenure --db {shown} log {leaver}");
    }
    let _ = stop_server.send(());
    let _ = server.await;
    Ok(code)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Stage {
    /// Posts a ticket to `/hooks/halo` as HaloPSA would and returns the run it started.
    async fn deliver(&self, body: &str) -> Result<String> {
        let r = self
            .http
            .post(format!("{}/hooks/halo", self.base))
            .basic_auth(HALO_USER, Some(&self.halo_password))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("cannot reach the demo's server")?;
        let status = r.status();
        let answer: Value = r.json().await.unwrap_or_default();
        let Some(run) = answer["run_id"].as_str().filter(|_| status.is_success()) else {
            bail!("the webhook was refused ({status}): {answer}");
        };
        say!(
            "   POST /hooks/halo -> {} run {run} of {}",
            status.as_u16(),
            answer["runbooks"][0].as_str().unwrap_or("?")
        );
        say!("   Run page:      {}/ui/runs/{run}", self.base);
        Ok(run.to_string())
    }

    async fn sandbox_state(&self) -> Result<Value> {
        Ok(self
            .http
            .get(format!("{}/_sandbox/state", self.sandbox))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Follows `run` live to its end; when its approval link reaches the approver, prints it
    /// and (with `--auto-approve`) approves through it.
    async fn through_approval(&self, run: &str, args: &Args) -> Result<ExitCode> {
        let follow = super::runs::follow_with(&self.engine, run, 0, false, false);
        let approve = async {
            let (approver, link) = self.approval_link(run).await?;
            say!("   Approval link for {approver} (sent by Teams card and email): {link}");
            if args.auto_approve {
                self.approve(run, &link, &approver).await?;
            } else {
                say!("   Open it in a browser and approve; the demo goes on when you do.");
            }
            Ok::<(), anyhow::Error>(())
        };
        tokio::pin!(follow);
        tokio::select! {
            code = &mut follow => return code,
            approved = approve => approved?,
        }
        follow.await
    }

    /// The Approve link of the Teams card the sandbox received for `run`, once it is sent.
    async fn approval_link(&self, run: &str) -> Result<(String, String)> {
        let started = Instant::now();
        loop {
            let state = self.sandbox_state().await?;
            if let Some(found) = super::demo_summary::card_link(&state, run) {
                return Ok(found);
            }
            if started.elapsed() > PATIENCE {
                bail!("no approval request for run {run} reached the sandbox's Teams");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What an approver's browser does: GET the page, then POST its form with `approve`.
    async fn approve(&self, run: &str, link: &str, approver: &str) -> Result<()> {
        let started = Instant::now();
        // The link works once the request is recorded (the run waits on its gate).
        while !matches!(
            self.engine.run(run).await.map(|r| r.status),
            Ok(tenure_engine::machine::RunStatus::Waiting)
        ) && started.elapsed() < PATIENCE
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let page = loop {
            let r = self.http.get(link).send().await?;
            // 503 + Retry-After while the request is still being sent to its approvers.
            if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && started.elapsed() < PATIENCE
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            break r
                .error_for_status()
                .context("the approval page did not open")?
                .text()
                .await?;
        };
        let csrf = super::demo_summary::form_field(&page, "csrf")
            .context("the approval page has no form to decide with")?;
        let r = self
            .http
            .post(link)
            .form(&[
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("comment", "approved in tenure demo"),
            ])
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("the approval was refused ({})", r.status());
        }
        say!("   {approver} opened the link and approved (GET the page, POST its form)");
        Ok(())
    }

    /// The report, the password link, the ticket note and the messages of the joiner run.
    async fn show_joiner(&self, run: &str, ticket: &str, state: &Value) -> Result<()> {
        say!("\nThe onboarding report (also posted as a note on ticket {ticket}):\n");
        say!("{}", indent(&self.engine.report(run).await?.markdown));
        super::demo_summary::messages(state, ticket);
        Ok(())
    }
}
