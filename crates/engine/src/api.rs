//! The `Engine` API: the one way every front end (CLI, server, UI) drives runs. It starts runs
//! (inputs checked the same way for everyone, an optional dedup key returning the existing
//! run), records approval decisions, cancels, retries and rolls back (each with who did it),
//! reads runs, lists them with filters and paging (whole, or as a list's light rows), reads journal events since a sequence
//! number, verifies journals, subscribes to changes, and makes workers. Each operation is a
//! machine event applied by the store; nothing here decides or writes journal lines.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tenure_runbook::{Plan, Renderer};
use tenure_steps::Registry;
use tokio::sync::broadcast;

use crate::driver::{start_context, worker_identity, Worker};
use crate::journal::{self, Event as JournalEvent, VerifyError};
use crate::machine::{self, status_name, Event, RunStatus};
use crate::people::{PersonLink, SyncRecord};
use crate::store::{self, RunFilter, RunRecord, RunRow, Store};

/// Why an engine operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// No such run.
    #[error("no run `{0}`")]
    NoRun(String),
    /// The inputs do not fit the runbook (every problem, one per entry).
    #[error("invalid inputs: {}", .0.join("; "))]
    Inputs(Vec<String>),
    /// The run's tenant is not one this installation manages.
    #[error("{0}")]
    Tenant(String),
    /// A template of the runbook (vars, tenant, concurrency) could not be rendered.
    #[error("{0}")]
    Template(String),
    /// The machine refused the operation in the run's current state (not waiting for that
    /// approval, not an approver, already decided, not failed...).
    #[error("{0}")]
    Refused(machine::Error),
    /// The change conflicts with what is recorded (an account already linked to another
    /// person): the message names what holds it.
    #[error("{0}")]
    Conflict(String),
    /// A value given is not acceptable (an empty key, an unknown link origin).
    #[error("{0}")]
    BadInput(String),
}

impl From<machine::Error> for Error {
    fn from(e: machine::Error) -> Self {
        Error::Refused(e)
    }
}

fn refused(e: store::Error, run: &str) -> Error {
    match e {
        store::Error::Machine(m) => Error::Refused(m),
        store::Error::NoRun(_) => Error::NoRun(run.to_string()),
        other => Error::Store(other),
    }
}

/// How a run was started, for the journal and templates (`trigger.*`).
#[derive(Clone, Debug)]
pub struct Trigger {
    /// `cli`, `api`, `webhook:<source>`, `schedule`.
    pub source: String,
    /// Who started it (an operator, an API token's name, a ticket's requester).
    pub by: Option<String>,
    /// The webhook payload or schedule context (`{}` otherwise).
    pub payload: Value,
}

impl Trigger {
    /// A trigger from `source`, started by `by`.
    pub fn new(source: &str, by: Option<String>) -> Self {
        Trigger {
            source: source.into(),
            by,
            payload: json!({}),
        }
    }
}

/// The trigger source of runs a `schedule` trigger starts.
pub const SCHEDULE_SOURCE: &str = "schedule";

/// A run to start.
#[derive(Clone, Debug)]
pub struct StartRun {
    /// The compiled plan (pinned for the run's life).
    pub plan: Arc<Plan>,
    /// The inputs as given (checked and defaulted against the runbook's `inputs`).
    pub inputs: Map<String, Value>,
    /// How it was started.
    pub trigger: Trigger,
    /// A delivery id (ticket id + event, an API client's key): a second start with the same
    /// key returns the first run and creates nothing.
    pub dedup_key: Option<String>,
}

/// A started (or found) run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The run id.
    pub id: String,
    /// The dedup key had been used: this is the existing run.
    pub duplicate: bool,
}

/// An approval decision.
#[derive(Clone, Debug)]
pub struct Decide {
    /// The run.
    pub run_id: String,
    /// The approval step.
    pub step: String,
    /// Who decides (one of the gate's approvers).
    pub approver: String,
    /// Approve or deny.
    pub approve: bool,
    /// An optional comment (bounded and stripped of control characters other than newlines
    /// here, see [`clean_comment`]).
    pub comment: Option<String>,
    /// Where from: `cli`, `api`, `link from 203.0.113.9`.
    pub source: String,
    /// The browser or client that sent it (bounded and stripped of control characters here).
    pub user_agent: Option<String>,
}

/// The longest user agent the journal keeps (characters).
pub const USER_AGENT_MAX: usize = 256;

/// A user agent as journaled: control characters removed, at most [`USER_AGENT_MAX`]
/// characters, `None` when nothing is left.
pub fn clean_user_agent(ua: &str) -> Option<String> {
    let clean: String = ua
        .chars()
        .filter(|c| !c.is_control())
        .take(USER_AGENT_MAX)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

/// The longest approval comment the journal keeps (characters).
pub const COMMENT_MAX: usize = 2000;

/// An approval comment as journaled, whichever front end it came through (link form, API,
/// CLI): control characters other than newlines removed (no terminal escapes reach
/// `tenure log`), at most [`COMMENT_MAX`] characters, trimmed, `None` when nothing is left.
pub fn clean_comment(comment: &str) -> Option<String> {
    let clean: String = comment
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(COMMENT_MAX)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

/// An approval gate waiting on someone (see [`Engine::pending_approvals`]).
#[derive(Clone, Debug)]
pub struct PendingApproval {
    /// The run.
    pub run_id: String,
    /// Its runbook id.
    pub runbook: String,
    /// The approval step.
    pub step: String,
    /// The gate: approvers, quorum, expiry, message, decisions so far.
    pub gate: machine::Gate,
    /// When the run was created (unix ms).
    pub created_at: i64,
    /// The run's inputs as stored (secret ones sealed), to say whom it is about.
    pub inputs: Value,
}

/// A run ready to be stored: its context (secret inputs and vars made from them sealed), its
/// rendered concurrency key, and the trigger as journaled.
pub(crate) struct Prepared {
    pub context: Value,
    pub concurrency_key: Option<String>,
    pub trigger: String,
}

/// Checks a run's inputs, finds its tenant, renders its vars and concurrency key, and seals
/// its secrets: what every start does, from the API or from a `runbook.call`.
pub(crate) fn prepare(
    plan: &Plan,
    given: &Map<String, Value>,
    trigger: &Trigger,
    tenants: &TenantLookup,
    renderer: &Renderer,
    secrets: &crate::secrets::SecretBox,
) -> Result<Prepared, Error> {
    if let Some(missing) = uncompiled_call(plan) {
        return Err(Error::Template(format!(
            "step `{missing}` calls a runbook whose plan was not compiled with this one (compile it with the runbooks it calls: `tenure run` does)"
        )));
    }
    let inputs = tenure_runbook::inputs::resolve(&plan.inputs, given)
        .map_err(|errors| Error::Inputs(errors.iter().map(|e| e.to_string()).collect()))?;
    let tenant_id = tenure_runbook::preview::tenant_id(plan, &inputs, renderer)
        .map_err(|e| Error::Template(e.to_string()))?;
    let tenant = tenants(&tenant_id).map_err(Error::Tenant)?;
    // A scheduled run's tick is also `trigger.scheduled_at` (null for other runs).
    let scheduled_at = match trigger.source.as_str() {
        SCHEDULE_SOURCE => trigger.payload.get("scheduled_at").cloned(),
        _ => None,
    };
    let trigger_value = json!({
        "source": trigger.source,
        "by": trigger.by,
        "received_at": chrono::Utc::now().to_rfc3339(),
        "scheduled_at": scheduled_at,
        "payload": trigger.payload,
    });
    let mut ctx =
        start_context(plan, inputs, tenant, trigger_value, renderer).map_err(Error::Template)?;
    let key = match &plan.concurrency {
        Some(t) => Some(
            renderer
                .render_text(t, &ctx)
                .map_err(|e| Error::Template(format!("concurrency: {}", e.message)))?,
        ),
        None => None,
    };
    // Secret inputs (and vars made from them) are stored sealed; the driver opens them only
    // to render a step's templates.
    let clear = secrets.seal_context(plan, &mut ctx);
    let key = key.map(|k| crate::secrets::scrub(&k, &clear));
    let trigger = match &trigger.by {
        Some(by) => format!("{} by {by}", trigger.source),
        None => trigger.source.clone(),
    };
    Ok(Prepared {
        context: ctx,
        concurrency_key: key,
        trigger,
    })
}

/// The first `runbook.call` step (of this plan or a plan it calls) whose runbook's plan is
/// not embedded.
fn uncompiled_call(plan: &Plan) -> Option<String> {
    for s in plan.steps.iter().chain(&plan.on_failure) {
        if s.uses == tenure_runbook::compile::CALL_KIND {
            let called = s.with["runbook"].as_str().unwrap_or_default();
            if !plan.calls.contains_key(called) {
                return Some(s.id.clone());
            }
        }
    }
    plan.calls.values().find_map(uncompiled_call)
}

/// Finds a managed tenant's template value (`tenant.*`) by the id a runbook names.
pub type TenantLookup = Arc<dyn Fn(&str) -> Result<Value, String> + Send + Sync>;

/// The engine: a store, the step kinds it runs, and the managed tenants.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    registry: Registry,
    tenants: TenantLookup,
    renderer: Arc<Renderer>,
}

impl Engine {
    /// Opens the database at `url` (`sqlite:PATH` or `postgres://...`).
    pub async fn open(url: &str, registry: Registry, tenants: TenantLookup) -> Result<Self, Error> {
        Ok(Self::new(Store::open(url).await?, registry, tenants))
    }

    /// An engine over an open store.
    pub fn new(store: Store, registry: Registry, tenants: TenantLookup) -> Self {
        Engine {
            store,
            registry,
            tenants,
            renderer: Arc::new(Renderer::new()),
        }
    }

    /// Whether `tenant` is one of the managed tenants (configured, or the sandbox's).
    pub fn knows_tenant(&self, tenant: &str) -> bool {
        (self.tenants)(tenant).is_ok()
    }

    /// The store (for benchmarks and tests that inspect it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A 32-byte key for `purpose`, derived from the database's secret key: every process
    /// on this database (server nodes, workers, a foreground `tenure run`) derives the same.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        self.store.derive_key(purpose)
    }

    /// Starts a run: checks the inputs, finds the tenant, renders vars and the concurrency
    /// key, and creates the run (queued behind a running one with the same key). With a used
    /// dedup key nothing is created and the existing run is returned.
    pub async fn start_run(&self, start: StartRun) -> Result<Started, Error> {
        let plan = start.plan;
        let ready = prepare(
            &plan,
            &start.inputs,
            &start.trigger,
            &self.tenants,
            &self.renderer,
            self.store.secrets(),
        )?;
        let (id, duplicate) = self
            .store
            .create_run(
                &plan,
                ready.context,
                &ready.trigger,
                ready.concurrency_key,
                start.dedup_key.filter(|k| !k.trim().is_empty()),
            )
            .await?;
        Ok(Started { id, duplicate })
    }

    /// Starts the run of tick `tick` of the plan's `triggers[index]` (a `schedule`): its `map`
    /// rendered over the schedule context (`trigger.scheduled_at`, `trigger.payload` with
    /// `scheduled_at`, `scheduled_local`, `cron`, `timezone`), the inputs checked like every
    /// start, and a dedup key of (runbook, trigger index, tick), so however many schedulers
    /// start the tick, one run exists for it (the others get it back as a duplicate).
    pub async fn start_scheduled(
        &self,
        plan: Arc<Plan>,
        index: usize,
        tick: chrono::DateTime<chrono::Utc>,
    ) -> Result<Started, Error> {
        let Some(tenure_runbook::Trigger::Schedule {
            cron,
            timezone,
            map,
            ..
        }) = plan.triggers.get(index)
        else {
            return Err(Error::Template(format!(
                "runbook `{}` has no schedule trigger #{index}",
                plan.runbook
            )));
        };
        let tz: chrono_tz::Tz = timezone
            .parse()
            .map_err(|_| Error::Template(format!("unknown timezone `{timezone}`")))?;
        let scheduled_at = tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let payload = json!({
            "scheduled_at": scheduled_at,
            "scheduled_local": tick.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "cron": cron,
            "timezone": timezone,
        });
        let ctx = json!({"trigger": {
            "source": SCHEDULE_SOURCE,
            "by": null,
            "received_at": chrono::Utc::now().to_rfc3339(),
            "scheduled_at": scheduled_at,
            "payload": payload,
        }});
        let tree = Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        let inputs = match self.renderer.render_tree(&tree, &ctx) {
            Ok(Value::Object(inputs)) => inputs,
            Ok(_) => Map::new(),
            Err(e) => return Err(Error::Template(format!("schedule `map`: {}", e.message))),
        };
        self.start_run(StartRun {
            dedup_key: Some(format!("schedule:{}#{index}@{scheduled_at}", plan.runbook)),
            plan,
            inputs,
            trigger: Trigger {
                source: SCHEDULE_SOURCE.into(),
                by: None,
                payload,
            },
        })
        .await
    }

    /// Records an approval decision. The machine counts the quorum, applies any-deny, and
    /// refuses a person who is not an approver, a second decision of the same person, or a
    /// gate that is not waiting. Returns the run's status afterwards.
    pub async fn decide(&self, d: Decide) -> Result<RunStatus, Error> {
        let event = Event::ApprovalDecided {
            step: d.step,
            approver: d.approver,
            approve: d.approve,
            comment: d.comment.as_deref().and_then(clean_comment),
            source: d.source,
            user_agent: d.user_agent.as_deref().and_then(clean_user_agent),
        };
        self.event(&d.run_id, event).await
    }

    /// Cancels a run.
    pub async fn cancel(&self, run_id: &str, by: &str) -> Result<RunStatus, Error> {
        self.event(run_id, Event::Cancel { by: by.into() }).await
    }

    /// Resumes a failed run from its failed steps (all, or those named), with a fresh retry
    /// budget for each.
    pub async fn retry(
        &self,
        run_id: &str,
        steps: Vec<String>,
        by: &str,
    ) -> Result<RunStatus, Error> {
        let event = Event::Retry {
            steps,
            by: by.into(),
        };
        self.event(run_id, event).await
    }

    /// Rolls back a failed or cancelled run through its steps' `compensate`.
    pub async fn rollback(&self, run_id: &str, by: &str) -> Result<RunStatus, Error> {
        self.event(run_id, Event::Rollback { by: by.into() }).await
    }

    async fn event(&self, run_id: &str, event: Event) -> Result<RunStatus, Error> {
        self.store
            .apply(run_id, vec![event])
            .await
            .map_err(|e| refused(e, run_id))?;
        Ok(self.run(run_id).await?.status)
    }

    /// A run.
    pub async fn run(&self, run_id: &str) -> Result<RunRecord, Error> {
        self.store.run(run_id).await.map_err(|e| refused(e, run_id))
    }

    /// Runs matching `filter`, newest first, one page.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
        Ok(self.store.runs(filter).await?)
    }

    /// Runs matching `filter`, newest first, one page, as a list shows them: id, runbook,
    /// status, times and labels (person, tenant, ticket, trigger), without reading any plan,
    /// context or machine.
    pub async fn run_rows(&self, filter: &RunFilter) -> Result<Vec<RunRow>, Error> {
        Ok(self.store.run_rows(filter).await?)
    }

    /// How many runs have each status (status name, count), by status name.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, Error> {
        Ok(self.store.count_by_status().await?)
    }

    /// A run's journal events after sequence number `after` (0: all).
    pub async fn events(&self, run_id: &str, after: u64) -> Result<Vec<JournalEvent>, Error> {
        self.run(run_id).await?;
        Ok(self.store.events_since(run_id, after).await?)
    }

    /// A run's report (what it did, step by step, secrets as `***`), as of now.
    pub async fn report(&self, run_id: &str) -> Result<crate::report::Report, Error> {
        let run = self.run(run_id).await?;
        let events = self.store.events(run_id).await?;
        Ok(crate::report::build(&run.plan, &run.context, &events, None))
    }

    /// A run's step outputs (secrets opened: only for the one place that must deliver them).
    pub async fn outputs(&self, run_id: &str) -> Result<Vec<(String, u32, Value)>, Error> {
        Ok(self.store.outputs(run_id).await?)
    }

    /// Checks a run's journal: every link and keyed hash, and that it ends at the head the run
    /// row recorded (a truncated or emptied journal is reported). `Ok(n)`: n events, intact.
    pub async fn verify(&self, run_id: &str) -> Result<Result<usize, VerifyError>, Error> {
        let head = self
            .store
            .head(run_id)
            .await
            .map_err(|e| refused(e, run_id))?;
        let status = self.run(run_id).await?.status;
        let finished = status.is_final().then(|| status_name(status));
        let events = self.store.events(run_id).await?;
        Ok(journal::verify(
            self.store.chain_key(),
            run_id,
            &events,
            (head.0, &head.1),
            finished.as_deref(),
        )
        .map(|()| events.len()))
    }

    /// Every approval gate waiting for `approver`'s decision: open gates of waiting runs
    /// that name them (case-insensitive, as the machine matches approvers) and that they have
    /// not decided yet, newest run first. Reading only; the machine still decides whether a
    /// decision counts.
    pub async fn pending_approvals(&self, approver: &str) -> Result<Vec<PendingApproval>, Error> {
        let mut out = Vec::new();
        let mut filter = RunFilter {
            status: Some("waiting".into()),
            limit: 500,
            ..Default::default()
        };
        loop {
            let page = self.store.runs(&filter).await?;
            for run in &page {
                for (step, gate) in run.machine.open_gates() {
                    if gate.approver(approver).is_some() && !gate.has_decided(approver) {
                        out.push(PendingApproval {
                            run_id: run.id.clone(),
                            runbook: run.plan.runbook.clone(),
                            step: step.to_string(),
                            gate: gate.clone(),
                            created_at: run.created_at,
                            inputs: run.context["inputs"].clone(),
                        });
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == filter.limit => {
                    filter.before = Some((last.created_at, last.id.clone()));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Ends the web UI session `nonce` on every node (its cookie would have expired at
    /// `until_ms`).
    pub async fn revoke_session(&self, nonce: &str, until_ms: i64) -> Result<(), Error> {
        Ok(self.store.revoke_session(nonce, until_ms).await?)
    }

    /// Whether the web UI session `nonce` was ended by signing out.
    pub async fn session_revoked(&self, nonce: &str) -> Result<bool, Error> {
        Ok(self.store.session_revoked(nonce).await?)
    }

    /// Records a link between a source's person and a tenant's account (an upsert on tenant,
    /// source and person key; `account_id` `None` is a pending link, the run `run_id` creating
    /// the account). Refused with [`Error::Conflict`], naming the person, when the account is
    /// already linked to another person of the tenant; with [`Error::BadInput`] for an empty
    /// tenant, source or person key, an unknown `via`, or a value holding a NUL or longer than
    /// [`MAX_PEOPLE_KEY_BYTES`] (every people method refuses those alike).
    pub async fn link_person(&self, link: PersonLink) -> Result<(), Error> {
        for (name, value) in [
            ("tenant", Some(&link.tenant)),
            ("source", Some(&link.source)),
            ("person key", Some(&link.person_key)),
            ("account id", link.account_id.as_ref()),
            ("sign-in name", link.user_principal_name.as_ref()),
            ("via", Some(&link.via)),
            ("run id", link.run_id.as_ref()),
        ] {
            people_text(name, value.map_or("", String::as_str))?;
        }
        for (name, value) in [
            ("tenant", &link.tenant),
            ("source", &link.source),
            ("person key", &link.person_key),
        ] {
            if value.trim().is_empty() {
                return Err(Error::BadInput(format!("a person link needs a {name}")));
            }
        }
        if !crate::people::VIA.contains(&link.via.as_str()) {
            return Err(Error::BadInput(format!(
                "a person link is made by `run`, `correlation` or `manual`, not `{}`",
                link.via
            )));
        }
        if link
            .account_id
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err(Error::BadInput(
                "a person link's account id is empty (leave it out for a pending link)".into(),
            ));
        }
        match self.store.link_person(&link).await? {
            None => Ok(()),
            Some(holder) => Err(Error::Conflict(format!(
                "account {}{} of tenant `{}` is already linked to person `{}` of source `{}`; unlink it first",
                link.account_id.as_deref().unwrap_or_default(),
                holder
                    .user_principal_name
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default(),
                holder.tenant,
                holder.person_key,
                holder.source,
            ))),
        }
    }

    /// Removes a person's link. Returns whether there was one.
    pub async fn unlink_person(
        &self,
        tenant: &str,
        source: &str,
        person_key: &str,
    ) -> Result<bool, Error> {
        people_texts(&[
            ("tenant", tenant),
            ("source", source),
            ("person key", person_key),
        ])?;
        Ok(self.store.unlink_person(tenant, source, person_key).await?)
    }

    /// Removes every link to an account of a tenant. Returns how many there were.
    pub async fn unlink_account(&self, tenant: &str, account_id: &str) -> Result<usize, Error> {
        people_texts(&[("tenant", tenant), ("account id", account_id)])?;
        Ok(self.store.unlink_account(tenant, account_id).await?)
    }

    /// The person links of a tenant (of one source, or every source), by source and key.
    pub async fn person_links(
        &self,
        tenant: &str,
        source: Option<&str>,
    ) -> Result<Vec<PersonLink>, Error> {
        people_texts(&[("tenant", tenant), ("source", source.unwrap_or_default())])?;
        Ok(self.store.person_links(tenant, source).await?)
    }

    /// The links to an account of a tenant (at most one).
    pub async fn links_of_account(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Vec<PersonLink>, Error> {
        people_texts(&[("tenant", tenant), ("account id", account_id)])?;
        Ok(self.store.links_of_account(tenant, account_id).await?)
    }

    /// Records a sync (replacing the record with the same id).
    pub async fn save_sync(&self, rec: &SyncRecord) -> Result<(), Error> {
        people_texts(&[
            ("sync id", &rec.id),
            ("source", &rec.source),
            ("tenant", &rec.tenant),
            ("mode", &rec.mode),
            ("status", &rec.status),
        ])?;
        if rec.summary.contains('\0') {
            return Err(Error::BadInput(
                "a sync's summary contains a NUL character".into(),
            ));
        }
        Ok(self.store.save_sync(rec).await?)
    }

    /// The newest `limit` syncs (of one source, or all), newest first, plans and outcomes
    /// included.
    pub async fn syncs(&self, source: Option<&str>, limit: i64) -> Result<Vec<SyncRecord>, Error> {
        people_texts(&[("source", source.unwrap_or_default())])?;
        Ok(self.store.syncs(source, limit).await?)
    }

    /// The newest `limit` syncs like [`Self::syncs`], their plans and outcomes left out
    /// (null): what a list of syncs shows, without reading each stored plan.
    pub async fn sync_summaries(
        &self,
        source: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SyncRecord>, Error> {
        Ok(self.store.sync_summaries(source, limit).await?)
    }

    /// One sync.
    pub async fn sync_record(&self, id: &str) -> Result<Option<SyncRecord>, Error> {
        people_texts(&[("sync id", id)])?;
        Ok(self.store.sync_record(id).await?)
    }

    /// The read cursor of a (source, tenant): the last tenant snapshot and its delta link.
    pub async fn people_cursor(&self, source: &str, tenant: &str) -> Result<Option<Value>, Error> {
        people_texts(&[("source", source), ("tenant", tenant)])?;
        Ok(self.store.people_cursor(source, tenant).await?)
    }

    /// Records the read cursor of a (source, tenant).
    pub async fn set_people_cursor(
        &self,
        source: &str,
        tenant: &str,
        cursor: &Value,
    ) -> Result<(), Error> {
        people_texts(&[("source", source), ("tenant", tenant)])?;
        Ok(self.store.set_people_cursor(source, tenant, cursor).await?)
    }

    /// How many tasks are due now and wait for a worker.
    pub async fn queue_depth(&self) -> Result<i64, Error> {
        Ok(self.store.queue_depth().await?)
    }

    /// The id of every run this process changes, as the change commits.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.store.changes()
    }

    /// A worker with a name unique to this process (`HOST-PID-RANDOM-N`).
    pub fn worker(&self, n: usize) -> Worker {
        Worker::new(
            self.store.clone(),
            self.registry.clone(),
            format!("{}-{n}", worker_identity()),
        )
        .with_tenants(self.tenants.clone())
    }
}

/// The longest key, id or name the people store takes, in bytes: far above any employee
/// number, object id or sign-in name, and well inside what a PostgreSQL index entry may hold.
pub const MAX_PEOPLE_KEY_BYTES: usize = 1024;

/// Refuses a people-store text PostgreSQL cannot hold (a NUL) or an index cannot take (too
/// long), the same on both databases, as bad input rather than a database failure.
fn people_text(name: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::BadInput(format!(
            "the {name} contains a NUL character"
        )));
    }
    if value.len() > MAX_PEOPLE_KEY_BYTES {
        return Err(Error::BadInput(format!(
            "the {name} is {} bytes long, more than the {MAX_PEOPLE_KEY_BYTES} a person link, sync or cursor takes",
            value.len()
        )));
    }
    Ok(())
}

/// [`people_text`] for several values.
fn people_texts(values: &[(&str, &str)]) -> Result<(), Error> {
    values.iter().try_for_each(|(n, v)| people_text(n, v))
}
