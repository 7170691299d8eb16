//! Finding and compiling runbook files: expand directories, read files, and resolve a
//! `RUNBOOK` argument that is either a path or a runbook id in `runbooks/`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tenure_runbook::{compile_with, Code, Output, Plan, Runbooks, SourceFile, Unresolved};

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

/// Reads and compiles one file; the runbooks its `runbook.call` steps name are found under
/// the file's directory.
pub fn compile_file(path: &Path) -> Result<Compiled> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    compile_in(path, &Dir::new(dir))
}

fn compile_in(path: &Path, runbooks: &Dir) -> Result<Compiled> {
    let text = read_yaml_file(path)?;
    let source = SourceFile::new(path.display().to_string(), text);
    let output = compile_with(&source, &tenure_steps::catalogue(), runbooks);
    Ok(Compiled { source, output })
}

/// Reads a YAML file of at most [`tenure_runbook::yaml::MAX_DOCUMENT_BYTES`] (the loader's
/// limit): no more is read, so a huge file or a device costs no memory.
/// Compiles `text` as if it were a file named `name` in `dir` (its `runbook.call`s resolved
/// among the runbooks there): what the server's validate endpoint does.
pub fn compile_text_in(name: &str, text: String, dir: &Path) -> Compiled {
    let source = SourceFile::new(name.to_string(), text);
    let output = compile_with(&source, &tenure_steps::catalogue(), &Dir::new(dir));
    Compiled { source, output }
}

/// The runbook id `path` declares (its top-level `runbook:`), read without compiling it.
pub fn id_of(path: &Path) -> Option<String> {
    declared_id(path)
}

pub fn read_yaml_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let limit = tenure_runbook::yaml::MAX_DOCUMENT_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > limit {
        bail!(
            "{}: the file is larger than the {limit} bytes a YAML document may have",
            path.display()
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// The runbooks of a directory (and its subdirectories), for `runbook.call`: found by their
/// `runbook:` id, compiled once each, with the chain of calls being compiled kept to report
/// cycles.
struct Dir {
    root: PathBuf,
    index: RefCell<Option<Vec<(String, PathBuf)>>>,
    chain: RefCell<Vec<String>>,
    cycle: RefCell<Option<Vec<String>>>,
    done: RefCell<HashMap<String, Result<Plan, Unresolved>>>,
}

impl Dir {
    fn new(root: &Path) -> Self {
        Dir {
            root: root.to_path_buf(),
            index: RefCell::new(None),
            chain: RefCell::new(Vec::new()),
            cycle: RefCell::new(None),
            done: RefCell::new(HashMap::new()),
        }
    }

    /// (id, file) of every runbook under the directory, read once.
    fn index(&self) -> Vec<(String, PathBuf)> {
        if let Some(index) = self.index.borrow().as_ref() {
            return index.clone();
        }
        let files = expand(std::slice::from_ref(&self.root)).unwrap_or_default();
        let index: Vec<(String, PathBuf)> = files
            .into_iter()
            .filter_map(|f| Some((declared_id(&f)?, f)))
            .collect();
        *self.index.borrow_mut() = Some(index.clone());
        index
    }
}

impl Runbooks for Dir {
    fn resolve(&self, id: &str, caller: &str) -> Result<Plan, Unresolved> {
        {
            let mut chain = self.chain.borrow_mut();
            if chain.is_empty() {
                chain.push(caller.to_string());
            }
            if let Some(at) = chain.iter().position(|c| c == id) {
                let mut cycle: Vec<String> = chain[at..].to_vec();
                cycle.push(id.to_string());
                *self.cycle.borrow_mut() = Some(cycle.clone());
                return Err(Unresolved::Cycle(cycle));
            }
        }
        if let Some(done) = self.done.borrow().get(id) {
            return done.clone();
        }
        let index = self.index();
        let found: Vec<String> = index
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, p)| p.display().to_string())
            .collect();
        if found.len() > 1 {
            return Err(Unresolved::Ambiguous(found));
        }
        let Some((_, path)) = index.iter().find(|(i, _)| i == id) else {
            let mut known: Vec<String> = index.into_iter().map(|(i, _)| i).collect();
            known.sort();
            known.dedup();
            return Err(Unresolved::Unknown(known));
        };
        self.chain.borrow_mut().push(id.to_string());
        let compiled = compile_in(path, self);
        self.chain.borrow_mut().pop();
        let result = match compiled {
            Err(e) => Err(Unresolved::Invalid(format!("{e:#}"))),
            Ok(c) => match c.output.plan {
                Some(plan) => Ok(plan),
                None if c
                    .output
                    .diagnostics
                    .iter()
                    .any(|d| d.code == Code::CallCycle) =>
                {
                    let cycle = self
                        .cycle
                        .borrow()
                        .clone()
                        .unwrap_or_else(|| vec![id.to_string(), id.to_string()]);
                    Err(Unresolved::Cycle(cycle))
                }
                None => {
                    let first = c.output.diagnostics.iter().find(|d| d.is_error());
                    Err(Unresolved::Invalid(match first {
                        Some(d) => {
                            let at = c.source.location(d.span.start);
                            format!("{}:{}:{}: {}", c.source.name(), at.line, at.col, d.message)
                        }
                        None => "it does not compile".into(),
                    }))
                }
            },
        };
        self.done
            .borrow_mut()
            .insert(id.to_string(), result.clone());
        result
    }
}

/// Resolves `RUNBOOK`: an existing path, or the id of a runbook under `runbooks/`. Only the
/// file whose top-level `runbook:` is the id is compiled; the others are read just far enough
/// to find their ids (see [`declared_id`]), so a broken or hostile file there cannot stop the
/// lookup of another one. Two files declaring the id are an error naming both.
pub fn resolve(arg: &str) -> Result<Compiled> {
    let path = Path::new(arg);
    if path.is_file() {
        return compile_file(path);
    }
    let dir = Path::new(RUNBOOKS_DIR);
    if !dir.is_dir() {
        bail!("no runbook file `{arg}`, and no {RUNBOOKS_DIR}/ directory to look up ids in");
    }
    let mut ids = Vec::new();
    let mut found: Vec<PathBuf> = Vec::new();
    for file in expand(&[dir.to_path_buf()])? {
        let Some(id) = declared_id(&file) else {
            continue;
        };
        if id == arg {
            found.push(file);
        }
        ids.push(id);
    }
    match found.as_slice() {
        [file] => compile_file(file),
        [first, second, ..] => bail!(
            "runbook id `{arg}` is declared by two files, {} and {}; each id must be unique in {RUNBOOKS_DIR}/",
            first.display(),
            second.display()
        ),
        [] => {
            ids.sort();
            ids.dedup();
            bail!(
                "no runbook file or id `{arg}` (runbooks in {RUNBOOKS_DIR}/: {})",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            )
        }
    }
}

/// The top-level `runbook:` id of a file, read through the YAML loader's bounded streaming
/// reader (no alias expansion, at most [`tenure_runbook::yaml::MAX_DOCUMENT_BYTES`] read).
/// `None` for a file that cannot be read, is not UTF-8, is too large or declares no id.
fn declared_id(path: &Path) -> Option<String> {
    use std::io::Read;
    let limit = tenure_runbook::yaml::MAX_DOCUMENT_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() > limit {
        return None;
    }
    let text = std::str::from_utf8(&bytes).ok()?;
    tenure_runbook::yaml::top_level_scalar(text, "runbook")
}

/// Prints a file's diagnostics to stderr.
pub fn print_diagnostics(c: &Compiled) {
    for d in &c.output.diagnostics {
        eprint!("{}", d.render(&c.source));
        eprintln!();
    }
}
