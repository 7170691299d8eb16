//! The web UI in a real browser (headless Chromium through WebDriver, see [`crate::browser`]):
//! `tenure serve` with the sandbox and three API tokens (an operator, a viewer, an approver),
//! runs started by the intake webhook or the REST API, and what each kind of user does on the
//! pages: an approver decides through the link of a real Teams card; an operator signs in,
//! follows a run live, finds a failed run in the list, retries it, starts a run from a
//! runbook's form; a viewer sees no buttons and a forced POST changes nothing; signing out
//! ends the session. The ids and attributes the tests look for are the UI's DOM contract
//! (docs/ui.md). Screenshots land in `target/ui-screenshots/`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::{Browser, Size, WAIT};
use crate::serve_approvals::{Setup, CONFIG, RUNBOOK as APPROVAL_RUNBOOK};

const OPERATOR: &str = "e2e-ui-operator-token";
const VIEWER: &str = "e2e-ui-viewer-token";
const APPROVER: &str = "e2e-ui-approver-token";

/// Blocks a user's sign-in: fails for a user the directory does not have yet, and succeeds
/// when retried after the user exists.
const BLOCK_RUNBOOK: &str = "runbook: block-user\nversion: 1\ntenant: contoso\ninputs:\n  user: { type: email, required: true, description: \"The user to block\" }\nsteps:\n  block: { uses: entra.disable_sign_in, with: { user: \"{{inputs.user}}\" } }\n";

/// The server, the sandbox and a browser at `size`; `None` when browser tests are skipped.
async fn start(size: Size) -> Option<(Setup, Browser)> {
    let driver = crate::browser::chromedriver()?;
    let config = format!(
        "{CONFIG}\n[[tokens]]\nname = \"ops\"\nrole = \"operator\"\ntoken_env = \"E2E_UI_OPERATOR\"\n\n[[tokens]]\nname = \"auditor\"\nrole = \"viewer\"\ntoken_env = \"E2E_UI_VIEWER\"\n\n[[tokens]]\nname = \"cfo@msp.example\"\nrole = \"approver\"\ntoken_env = \"E2E_UI_APPROVER\"\n"
    );
    let setup = Setup::start(
        &config,
        &[
            ("offboard.yaml", APPROVAL_RUNBOOK),
            ("block.yaml", BLOCK_RUNBOOK),
        ],
        &[
            ("E2E_UI_OPERATOR", OPERATOR),
            ("E2E_UI_VIEWER", VIEWER),
            ("E2E_UI_APPROVER", APPROVER),
        ],
    );
    let browser = Browser::start(&driver, &setup.base, size).await;
    Some((setup, browser))
}

/// Starts `runbook` with `inputs` through the REST API as the operator; returns the run id.
async fn start_run(s: &Setup, runbook: &str, inputs: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/api/runs", s.base))
        .bearer_auth(OPERATOR)
        .json(&json!({"runbook": runbook, "inputs": inputs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every run in the database.
fn runs(s: &Setup) -> Vec<Value> {
    serde_json::from_slice(&crate::tenure_db(&s.db, &["runs", "--json"]).stdout).unwrap()
}

/// Reports how long a browser test took (the CI budget is shared).
struct Timed(&'static str, Instant);

impl Drop for Timed {
    fn drop(&mut self) {
        eprintln!("browser test {} took {:.1?}", self.0, self.1.elapsed());
    }
}

/// The approval link page (no sign-in) approves one run and denies another from the browser,
/// at laptop and phone width.
#[tokio::test]
async fn an_approver_decides_on_the_link_page_in_a_browser() {
    let _t = Timed("approval link page", Instant::now());
    let Some((s, b)) = start(Size::Laptop).await else {
        return;
    };
    let (run, _) = s
        .deliver("REQ-2001", "megan.bowen@contoso.example", 1)
        .await;
    let link = s.card_link(&run, "it.lead@msp.example").await;
    s.requested(&run).await;
    b.goto(&link).await;
    b.wait_for("button[name=decision][value=approve]", WAIT)
        .await;
    assert!(b.text("body").await.contains("megan.bowen@contoso.example"));
    b.screenshot("approval-laptop").await;
    b.resize(Size::Phone).await;
    assert_eq!(b.viewport_width().await, 390);
    b.screenshot("approval-phone").await;
    // Nothing wider than the phone's screen: no sideways scrolling.
    let wide = b
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(wide, false, "the approval page scrolls sideways on a phone");
    b.resize(Size::Laptop).await;
    b.fill("textarea#comment", "Checked with HR").await;
    b.click("button[name=decision][value=approve]").await;
    b.wait_for_attr("#decision-result", "data-decision", "approved", WAIT)
        .await;
    assert_eq!(
        b.attr("a#run-page", "href").await.as_deref(),
        Some(format!("/ui/runs/{run}").as_str())
    );
    assert_eq!(s.ended(&run).await, "succeeded");
    let decided = s
        .journal(&run)
        .into_iter()
        .find(|e| e["kind"]["type"] == "approval_decided")
        .unwrap()["kind"]
        .clone();
    assert_eq!(decided["approver"], "it.lead@msp.example");
    assert_eq!(decided["comment"], "Checked with HR");
    assert!(
        decided["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Chrome")),
        "{decided}"
    );

    // Another run, denied from its link on a phone.
    let (second, _) = s
        .deliver("REQ-2002", "alex.wilber@contoso.example", 1)
        .await;
    let link = s.card_link(&second, "cfo@msp.example").await;
    s.requested(&second).await;
    b.resize(Size::Phone).await;
    b.goto(&link).await;
    b.click("button[name=decision][value=deny]").await;
    b.wait_for_attr("#decision-result", "data-decision", "denied", WAIT)
        .await;
    assert_eq!(s.ended(&second).await, "denied");
}

/// An operator follows a run on its page while an approver approves it in another tab: the
/// status changes without a reload; an approver sees the request in the UI's list; a second
/// run, denied through its link, shows as denied on the page the link's result offers.
#[tokio::test]
async fn the_run_page_follows_an_approval_live_and_shows_a_denial() {
    let _t = Timed("run page live", Instant::now());
    let Some((s, b)) = start(Size::Laptop).await else {
        return;
    };
    let (run, _) = s
        .deliver("REQ-3001", "megan.bowen@contoso.example", 1)
        .await;
    s.requested(&run).await;

    // The approver (signed in) has it in the UI's approvals list.
    b.sign_in(APPROVER).await;
    b.goto("/ui/approvals").await;
    b.wait_for(
        &format!(".pending[data-run=\"{run}\"][data-step=\"ask\"]"),
        WAIT,
    )
    .await;
    b.sign_out().await;

    b.sign_in(OPERATOR).await;
    b.goto(&format!("/ui/runs/{run}")).await;
    b.wait_for_attr("#run-status", "data-status", "waiting", WAIT)
        .await;
    b.wait_for(".dag svg g.step[data-step=\"ask\"]", WAIT).await;
    for section in ["#graph", "#timeline", "#log", "#approvals"] {
        b.wait_for(section, WAIT).await;
    }
    // A mark in this page's window: a reload would lose it.
    b.script("window.tenureNoReload = 'kept'; return null")
        .await;

    let link = s.card_link(&run, "it.lead@msp.example").await;
    let run_tab = b.open_tab(&link).await;
    b.click("button[name=decision][value=approve]").await;
    b.wait_for("#decision-result", WAIT).await;
    b.close_tab(run_tab).await;

    b.wait_for_attr("#run-status", "data-status", "succeeded", WAIT)
        .await;
    b.wait_for_attr(
        ".dag svg g.step[data-step=\"done\"]",
        "data-state",
        "succeeded",
        WAIT,
    )
    .await;
    assert_eq!(
        b.script("return window.tenureNoReload || null").await,
        "kept",
        "the run page reloaded instead of refreshing its live part"
    );
    assert!(b.text("#approvals").await.contains("it.lead@msp.example"));
    b.screenshot("run-laptop").await;
    b.resize(Size::Phone).await;
    b.screenshot("run-phone").await;
    b.resize(Size::Laptop).await;

    // Denied through the link; the result page's link opens the run page, which says so.
    let (second, _) = s
        .deliver("REQ-3002", "alex.wilber@contoso.example", 1)
        .await;
    let link = s.card_link(&second, "cfo@msp.example").await;
    s.requested(&second).await;
    b.goto(&link).await;
    b.fill("textarea#comment", "Not before the handover").await;
    b.click("button[name=decision][value=deny]").await;
    b.click("a#run-page").await;
    b.wait_for_path(&format!("/ui/runs/{second}"), WAIT).await;
    b.wait_for_attr("#run-status", "data-status", "denied", WAIT)
        .await;
    assert!(b
        .text("#approvals")
        .await
        .contains("Not before the handover"));
}

/// An operator finds a failed run in the list by the user it was for, opens it, retries it
/// through the confirmation page once the cause is fixed, and sees it succeed.
#[tokio::test]
async fn an_operator_finds_a_failed_run_and_retries_it() {
    let _t = Timed("retry from the list", Instant::now());
    let Some((s, b)) = start(Size::Laptop).await else {
        return;
    };
    let upn = "new.starter@contoso.example";
    // The user is not in the directory yet: the run fails.
    let failed = start_run(&s, "block-user", json!({"user": upn})).await;
    let other = start_run(
        &s,
        "block-user",
        json!({"user": "alex.wilber@contoso.example"}),
    )
    .await;
    assert_eq!(s.ended(&failed).await, "failed");
    assert_eq!(s.ended(&other).await, "succeeded");

    b.sign_in(OPERATOR).await;
    b.goto("/ui/runs").await;
    b.wait_for(
        &format!("#runs tbody#run-rows tr.run-row[data-run=\"{other}\"]"),
        WAIT,
    )
    .await;
    b.screenshot("runs-laptop").await;
    b.resize(Size::Phone).await;
    b.screenshot("runs-phone").await;
    b.resize(Size::Laptop).await;

    b.fill("form#filters input[name=q]", upn).await;
    b.click("button#apply-filters").await;
    let row = format!("tr.run-row[data-run=\"{failed}\"][data-status=\"failed\"]");
    b.wait_for(&row, WAIT).await;
    // The filter keeps only the failed run's row.
    let started = Instant::now();
    while b.exists(&format!("tr.run-row[data-run=\"{other}\"]")).await {
        assert!(started.elapsed() < WAIT, "the filter kept run {other}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.all("tr.run-row").await.len(), 1);
    b.click(&format!("{row} a.run-link[href=\"/ui/runs/{failed}\"]"))
        .await;
    b.wait_for_path(&format!("/ui/runs/{failed}"), WAIT).await;
    b.wait_for_attr("#run-status", "data-status", "failed", WAIT)
        .await;
    b.wait_for_attr(
        ".dag svg g.step[data-step=\"block\"]",
        "data-state",
        "failed",
        WAIT,
    )
    .await;
    b.wait_for("a.action-retry-step[data-step=\"block\"]", WAIT)
        .await;

    // The cause goes away (the user now exists); the operator retries.
    assert_eq!(
        crate::sandbox::create_user(&s.sandbox, upn, "New Starter").await,
        201
    );
    b.click("a#action-retry").await;
    b.wait_for("form#confirm", WAIT).await;
    // The confirmation page changed nothing yet.
    assert_eq!(s.ended(&failed).await, "failed");
    b.click("button#confirm-button").await;
    b.wait_for_path(&format!("/ui/runs/{failed}"), WAIT).await;
    b.wait_for_attr("#run-status", "data-status", "succeeded", WAIT)
        .await;
    let retried = s
        .journal(&failed)
        .into_iter()
        .find(|e| e["kind"]["type"] == "run_retried")
        .expect("a retry in the journal");
    assert_eq!(retried["kind"]["by"], "ops", "{retried}");
}

/// An operator starts a run from a runbook's form: a bad input is refused on the form, then
/// the run starts and the browser lands on its page.
#[tokio::test]
async fn an_operator_starts_a_run_from_the_runbook_form() {
    let _t = Timed("start form", Instant::now());
    let Some((s, b)) = start(Size::Laptop).await else {
        return;
    };
    b.sign_in(OPERATOR).await;
    b.goto("/ui/runbooks").await;
    b.click("a.runbook-link[data-runbook=\"block-user\"]").await;
    b.wait_for_path("/ui/runbooks/block-user", WAIT).await;
    b.wait_for("form#start-run", WAIT).await;
    let before = runs(&s).len();

    b.fill("form#start-run #in-user", "not an email").await;
    // The server's check, not the browser's (an `email` field would stop the form here).
    b.script("document.querySelector('form#start-run').noValidate = true; return null")
        .await;
    b.click("button#start-button").await;
    b.wait_for(".field-error", WAIT).await;
    b.wait_for("form#start-run", WAIT).await;
    assert_eq!(runs(&s).len(), before, "a refused form started a run");

    b.fill("form#start-run #in-user", "alex.wilber@contoso.example")
        .await;
    b.click("button#start-button").await;
    let path = b.wait_for_path("/ui/runs/", WAIT).await;
    let run = path.trim_start_matches("/ui/runs/").to_string();
    b.wait_for_attr("#run-status", "data-status", "succeeded", WAIT)
        .await;
    let started = runs(&s)
        .into_iter()
        .find(|r| r["id"] == run.as_str())
        .unwrap_or_else(|| panic!("no run {run} in the database"));
    assert_eq!(started["runbook"], "block-user", "{started}");
}

/// A viewer sees runs and runbooks but no operator button and no start form; forcing the
/// POSTs with the viewer's own session and CSRF token gets 403 and changes nothing.
#[tokio::test]
async fn a_viewer_has_no_buttons_and_a_forced_post_is_refused() {
    let _t = Timed("viewer", Instant::now());
    let Some((s, b)) = start(Size::Laptop).await else {
        return;
    };
    let run = start_run(
        &s,
        "block-user",
        json!({"user": "nobody.here@contoso.example"}),
    )
    .await;
    assert_eq!(s.ended(&run).await, "failed");

    b.sign_in(VIEWER).await;
    assert!(b.text("header .who").await.contains("auditor"));
    b.goto(&format!("/ui/runs/{run}")).await;
    b.wait_for_attr("#run-status", "data-status", "failed", WAIT)
        .await;
    for button in [
        "#action-retry",
        "#action-cancel",
        "#action-rollback",
        ".action-retry-step",
    ] {
        b.assert_absent(button).await;
    }
    b.goto("/ui/runbooks/block-user").await;
    b.wait_for("main#main h1", WAIT).await;
    b.assert_absent("form#start-run").await;
    b.assert_absent("#start-button").await;

    // The viewer's own session and CSRF token, sent without the browser's help.
    let cookie = b.cookie("tenure_session").await.expect("a session cookie");
    let csrf = b
        .attr("form[action=\"/ui/sign-out\"] input[name=csrf]", "value")
        .await
        .expect("the page's CSRF token");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let journal = s.journal(&run).len();
    let before = runs(&s).len();
    let forced = [
        (
            format!("/ui/runs/{run}/retry"),
            vec![("csrf", csrf.clone())],
        ),
        (
            format!("/ui/runs/{run}/rollback"),
            vec![("csrf", csrf.clone())],
        ),
        (
            format!("/ui/runs/{run}/retry-step"),
            vec![("csrf", csrf.clone()), ("step", "block".to_string())],
        ),
        (
            "/ui/runbooks/block-user/start".to_string(),
            vec![
                ("csrf", csrf.clone()),
                ("in.user", "alex.wilber@contoso.example".to_string()),
            ],
        ),
    ];
    for (path, form) in forced {
        let r = http
            .post(format!("{}{path}", s.base))
            .header("cookie", format!("tenure_session={cookie}"))
            .header("origin", &s.base)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "POST {path} as a viewer");
    }
    assert_eq!(
        s.journal(&run).len(),
        journal,
        "a forced POST changed the run"
    );
    assert_eq!(runs(&s).len(), before, "a forced POST started a run");
    b.goto(&format!("/ui/runs/{run}")).await;
    b.wait_for_attr("#run-status", "data-status", "failed", WAIT)
        .await;
}

/// A wrong token is refused on the form; the right one signs in; signing out removes the
/// session, and the next page asks to sign in again, then goes where it was going.
#[tokio::test]
async fn signing_in_and_out_in_a_browser() {
    let _t = Timed("sign in and out", Instant::now());
    let Some((_s, b)) = start(Size::Laptop).await else {
        return;
    };
    b.goto("/ui/runs").await;
    b.wait_for_path("/ui/sign-in", WAIT).await;
    b.wait_for("form[action=\"/ui/sign-in\"] input#token", WAIT)
        .await;
    b.screenshot("sign-in-laptop").await;
    b.fill("input#token", "not-a-token").await;
    b.click("form[action=\"/ui/sign-in\"] button[type=submit]")
        .await;
    b.wait_for(".errors", WAIT).await;
    assert!(b.cookie("tenure_session").await.is_none());

    b.sign_in(OPERATOR).await;
    assert_eq!(b.path().await, "/ui/runs");
    assert!(b.text("header .who").await.contains("ops"));
    assert!(b.cookie("tenure_session").await.is_some());

    b.sign_out().await;
    assert_eq!(b.path().await, "/ui/sign-in");
    assert!(b.cookie("tenure_session").await.is_none());
    b.goto("/ui/runbooks").await;
    let path = b.wait_for_path("/ui/sign-in", WAIT).await;
    assert!(path.contains("next="), "{path}");
    b.assert_absent("header .who").await;
    // Signing in again goes where the browser was going.
    b.fill("input#token", VIEWER).await;
    b.click("form[action=\"/ui/sign-in\"] button[type=submit]")
        .await;
    b.wait_for_path("/ui/runbooks", WAIT).await;
    assert!(b.text("header .who").await.contains("auditor"));
}
