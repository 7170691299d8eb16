//! What every handler shares: the engine, the configuration and the runbook library.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tenure_engine::Engine;

use crate::config::ServerConfig;
use crate::hooks::Sources;
use crate::library::{Library, LibrarySource};

/// How often the library asks its source whether a runbook file changed.
const LIBRARY_CHECK: Duration = Duration::from_secs(1);

/// The shared state of the server (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    engine: Engine,
    config: ServerConfig,
    hooks: Sources,
    source: Arc<dyn LibrarySource>,
    library: RwLock<(u64, Arc<Library>)>,
    checked: Mutex<Instant>,
    links: OnceLock<crate::approvals::Links>,
}

impl AppState {
    /// The state over `engine`, configured by `config`, with runbooks from `source`. A webhook
    /// source whose secrets cannot be read is logged and refuses its deliveries; use
    /// [`AppState::try_new`] to refuse to start instead.
    pub fn new(engine: Engine, config: ServerConfig, source: Arc<dyn LibrarySource>) -> Self {
        let hooks = Sources::lenient(&config.webhooks);
        Self::with_hooks(engine, config, hooks, source)
    }

    /// Like [`AppState::new`], but any configuration problem (a webhook secret's environment
    /// variable not set, a field a source's kind needs) is an error naming it.
    pub fn try_new(
        engine: Engine,
        config: ServerConfig,
        source: Arc<dyn LibrarySource>,
    ) -> Result<Self, crate::Error> {
        let hooks = Sources::load(&config.webhooks)?;
        Ok(Self::with_hooks(engine, config, hooks, source))
    }

    fn with_hooks(
        engine: Engine,
        config: ServerConfig,
        hooks: Sources,
        source: Arc<dyn LibrarySource>,
    ) -> Self {
        let fingerprint = source.fingerprint();
        let library = Arc::new(source.load());
        AppState(Arc::new(Inner {
            engine,
            config,
            hooks,
            source,
            library: RwLock::new((fingerprint, library)),
            checked: Mutex::new(Instant::now()),
            links: OnceLock::new(),
        }))
    }

    /// The state with the approval links' signer (see [`crate::approvals::Links::from_config`]);
    /// without it, approval pages answer 503.
    pub fn with_links(self, links: crate::approvals::Links) -> Self {
        let _ = self.0.links.set(links);
        self
    }

    /// The approval links' signer, if set.
    pub fn links(&self) -> Option<&crate::approvals::Links> {
        self.0.links.get()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The webhook sources, with their secrets.
    pub fn hooks(&self) -> &Sources {
        &self.0.hooks
    }

    /// Where the runbooks come from.
    pub fn library_source(&self) -> &Arc<dyn LibrarySource> {
        &self.0.source
    }

    /// The runbooks as of now: reloaded when a file changed (checked at most once a second).
    pub fn library(&self) -> Arc<Library> {
        let due = {
            let mut checked = self.0.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.elapsed() >= LIBRARY_CHECK {
                *checked = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            let fingerprint = self.0.source.fingerprint();
            let stale = self.0.library.read().unwrap_or_else(|p| p.into_inner()).0 != fingerprint;
            if stale {
                let fresh = Arc::new(self.0.source.load());
                *self.0.library.write().unwrap_or_else(|p| p.into_inner()) = (fingerprint, fresh);
            }
        }
        self.0
            .library
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}
