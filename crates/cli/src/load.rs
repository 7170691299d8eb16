//! Finding and compiling runbook files: expand directories, read files, and resolve a
//! `RUNBOOK` argument that is either a path or a runbook id in `runbooks/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tenure_lsp::calls::Dir;
use tenure_runbook::{compile_with, Output, SchemaCatalogue, SourceFile};

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
    let text = read_yaml_file(path)?;
    Ok(compile_text_in(&path.display().to_string(), text, dir))
}

/// The runbooks under `dir` for `runbook.call` (the language server's resolver, reading
/// files as the CLI does so an unreadable one is named with its cause).
fn calls_in<'a>(dir: &Path, catalogue: &'a SchemaCatalogue) -> Dir<'a> {
    Dir::with_reader(dir, catalogue, |p| {
        read_yaml_file(p).map_err(|e| format!("{e:#}"))
    })
}

/// Reads a YAML file of at most [`tenure_runbook::yaml::MAX_DOCUMENT_BYTES`] (the loader's
/// limit): no more is read, so a huge file or a device costs no memory.
/// Compiles `text` as if it were a file named `name` in `dir` (its `runbook.call`s resolved
/// among the runbooks there): what the server's validate endpoint does.
pub fn compile_text_in(name: &str, text: String, dir: &Path) -> Compiled {
    let source = SourceFile::new(name.to_string(), text);
    let catalogue = tenure_steps::catalogue();
    let output = compile_with(&source, &catalogue, &calls_in(dir, &catalogue));
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

/// Resolves `RUNBOOK`: an existing path, or the id of a runbook under `runbooks/`. Only the
/// file whose top-level `runbook:` is the id is compiled; the others are read just far enough
/// to find their ids (see [`declared_id`]), so a broken or hostile file there cannot stop the
/// lookup of another one. Two files declaring the id are an error naming both.
pub fn resolve(arg: &str) -> Result<Compiled> {
    let path = Path::new(arg);
    if path.is_file() {
        return compile_file(path);
    }
    resolve_id_in(Path::new(RUNBOOKS_DIR), arg)
}

/// The runbook whose top-level `runbook:` is `arg` among the files under `dir` (as
/// [`resolve`] looks ids up in `runbooks/`), compiled.
pub fn resolve_id_in(dir: &Path, arg: &str) -> Result<Compiled> {
    let shown = dir.display();
    if !dir.is_dir() {
        bail!(
            "no runbook file `{arg}`, and no {shown}/ directory to look up ids in (run tenure \
             where your runbooks/ directory is; the stock runbooks are in the repository's \
             runbooks/)"
        );
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
            "runbook id `{arg}` is declared by two files, {} and {}; each id must be unique in {shown}/",
            first.display(),
            second.display()
        ),
        [] => {
            ids.sort();
            ids.dedup();
            bail!(
                "no runbook file or id `{arg}` (runbooks in {shown}/: {})",
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
