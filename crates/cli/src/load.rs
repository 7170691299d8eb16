//! Finding and compiling runbook files: expand directories, read files, and resolve a
//! `RUNBOOK` argument that is either a path or a runbook id in `runbooks/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tenure_runbook::{compile, Output, SourceFile};

/// The directory searched for a runbook given by id.
pub const RUNBOOKS_DIR: &str = "runbooks";

/// One compiled file.
pub struct Compiled {
    /// The source, for rendering diagnostics.
    pub source: SourceFile,
    /// What the compiler produced.
    pub output: Output,
}

/// Every `.yaml`/`.yml` file under `paths` (files are taken as given), sorted.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).with_context(|| format!("cannot read directory {}", p.display()))?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads and compiles one file.
pub fn compile_file(path: &Path) -> Result<Compiled> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let source = SourceFile::new(path.display().to_string(), text);
    let output = compile(&source, &tenure_steps::catalogue());
    Ok(Compiled { source, output })
}

/// Resolves `RUNBOOK`: an existing path, or the id of a runbook under `runbooks/`.
pub fn resolve(arg: &str) -> Result<Compiled> {
    let path = Path::new(arg);
    if path.is_file() {
        return compile_file(path);
    }
    let dir = Path::new(RUNBOOKS_DIR);
    if dir.is_dir() {
        let mut ids = Vec::new();
        for file in expand(&[dir.to_path_buf()])? {
            let compiled = compile_file(&file)?;
            if let Some(plan) = &compiled.output.plan {
                if plan.runbook == arg {
                    return Ok(compiled);
                }
                ids.push(plan.runbook.clone());
            } else if declared_id(compiled.source.text()).as_deref() == Some(arg) {
                return Ok(compiled);
            }
        }
        ids.sort();
        bail!(
            "no runbook file or id `{arg}` (runbooks in {RUNBOOKS_DIR}/: {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        );
    }
    bail!("no runbook file `{arg}`, and no {RUNBOOKS_DIR}/ directory to look up ids in")
}

/// The `runbook:` id of a file that does not compile, so errors are shown for the file asked for.
fn declared_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("runbook:"))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_string()
        })
}

/// Prints a file's diagnostics to stderr.
pub fn print_diagnostics(c: &Compiled) {
    for d in &c.output.diagnostics {
        eprint!("{}", d.render(&c.source));
        eprintln!();
    }
}
