//! The runbooks the server knows: every file under the runbooks directory, compiled. The binary
//! supplies a [`LibrarySource`] (it owns the file layout and the `runbook.call` resolver); the
//! server asks it again when the files change, so an edited runbook serves new runs at once and
//! running runs keep the plan they pinned.

use std::sync::Arc;

use tenure_runbook::Plan;

/// One runbook file.
#[derive(Clone, Debug)]
pub struct RunbookEntry {
    /// Its id (`runbook:`), or the file name when it has none.
    pub id: String,
    /// The file it came from.
    pub path: String,
    /// The compiled plan, when it compiles.
    pub plan: Option<Arc<Plan>>,
    /// Every diagnostic, rendered as `file:line:col: error[CODE]: message`.
    pub diagnostics: Vec<String>,
    /// The YAML text.
    pub source: String,
}

/// Every runbook file, compiled.
#[derive(Clone, Debug, Default)]
pub struct Library {
    /// The files, in path order.
    pub entries: Vec<RunbookEntry>,
}

impl Library {
    /// The runbook with `id`, if exactly one file declares it.
    pub fn get(&self, id: &str) -> Option<&RunbookEntry> {
        let mut found = self.entries.iter().filter(|e| e.id == id);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Every plan that compiles.
    pub fn plans(&self) -> impl Iterator<Item = &Arc<Plan>> {
        self.entries.iter().filter_map(|e| e.plan.as_ref())
    }
}

/// Where the runbooks come from.
pub trait LibrarySource: Send + Sync {
    /// A cheap value that changes when any runbook file changes (names, sizes, times).
    fn fingerprint(&self) -> u64;
    /// Reads and compiles every runbook.
    fn load(&self) -> Library;
    /// Compiles one text as if it were a file named `name` among the runbooks (what
    /// `POST /api/runbooks/validate` does): the plan, if it compiles, and every diagnostic.
    fn compile(&self, name: &str, text: &str) -> (Option<Plan>, Vec<String>);
}
