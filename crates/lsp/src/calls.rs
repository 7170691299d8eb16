//! `runbook.call` resolved among the YAML files under a directory: the called runbooks are
//! found by their `runbook:` id (each file read bounded, only when a runbook calls one) and
//! compiled with the chain of calls kept to report cycles. The editor uses it for the
//! document's directory, and `tenure validate`/`run`/`serve` for `runbooks/` (with their own
//! reader, whose errors name the file).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use tenure_runbook::yaml::{top_level_scalar, MAX_DOCUMENT_BYTES};
use tenure_runbook::{compile_with, Catalogue, Code, Plan, Runbooks, SourceFile, Unresolved};

/// Reads a runbook file: its text, or why it cannot be read.
pub type Reader = fn(&Path) -> Result<String, String>;

/// The runbooks under one directory.
pub struct Dir<'a> {
    root: PathBuf,
    catalogue: &'a dyn Catalogue,
    reader: Reader,
    index: RefCell<Option<Vec<(String, PathBuf)>>>,
    chain: RefCell<Vec<String>>,
    cycle: RefCell<Option<Vec<String>>>,
    done: RefCell<HashMap<String, Result<Plan, Unresolved>>>,
}

impl<'a> Dir<'a> {
    /// The runbooks under `root`, checked against `catalogue`.
    pub fn new(root: &Path, catalogue: &'a dyn Catalogue) -> Self {
        Self::with_reader(root, catalogue, |p| {
            read(p).ok_or_else(|| format!("{}: not a readable UTF-8 YAML file", p.display()))
        })
    }

    /// Like [`Dir::new`], reading the called files with `reader`.
    pub fn with_reader(root: &Path, catalogue: &'a dyn Catalogue, reader: Reader) -> Self {
        Dir {
            root: root.to_path_buf(),
            catalogue,
            reader,
            index: RefCell::new(None),
            chain: RefCell::new(Vec::new()),
            cycle: RefCell::new(None),
            done: RefCell::new(HashMap::new()),
        }
    }

    fn index(&self) -> Vec<(String, PathBuf)> {
        if let Some(index) = self.index.borrow().as_ref() {
            return index.clone();
        }
        let mut files = Vec::new();
        walk(&self.root, &mut files, 0);
        let index: Vec<(String, PathBuf)> = files
            .into_iter()
            .filter_map(|f| Some((top_level_scalar(&read(&f)?, "runbook")?, f)))
            .collect();
        *self.index.borrow_mut() = Some(index.clone());
        index
    }
}

/// A file's text, if it is UTF-8 and no larger than a YAML document may be.
pub fn read(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() && depth < 8 {
            walk(&p, out, depth + 1);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

impl Runbooks for Dir<'_> {
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
        let found: Vec<&PathBuf> = index
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, p)| p)
            .collect();
        let result = match found.as_slice() {
            [] => {
                let mut known: Vec<String> = index.iter().map(|(i, _)| i.clone()).collect();
                known.sort();
                known.dedup();
                Err(Unresolved::Unknown(known))
            }
            [path] => match (self.reader)(path) {
                Err(e) => Err(Unresolved::Invalid(e)),
                Ok(text) => {
                    let source = SourceFile::new(path.display().to_string(), text);
                    self.chain.borrow_mut().push(id.to_string());
                    let out = compile_with(&source, self.catalogue, self);
                    self.chain.borrow_mut().pop();
                    match out.plan {
                        Some(plan) => Ok(plan),
                        None if out.diagnostics.iter().any(|d| d.code == Code::CallCycle) => {
                            let cycle = self.cycle.borrow().clone();
                            Err(Unresolved::Cycle(
                                cycle.unwrap_or_else(|| vec![id.to_string(), id.to_string()]),
                            ))
                        }
                        None => Err(Unresolved::Invalid(
                            out.diagnostics
                                .iter()
                                .find(|d| d.is_error())
                                .map(|d| {
                                    let at = source.location(d.span.start);
                                    format!(
                                        "{}:{}:{}: {}",
                                        source.name(),
                                        at.line,
                                        at.col,
                                        d.message
                                    )
                                })
                                .unwrap_or_else(|| format!("{id} has errors")),
                        )),
                    }
                }
            },
            many => Err(Unresolved::Ambiguous(
                many.iter().map(|p| p.display().to_string()).collect(),
            )),
        };
        self.done
            .borrow_mut()
            .insert(id.to_string(), result.clone());
        result
    }
}

/// The directory of a `file:` URI's path (percent-decoded), if it is one.
pub fn dir_of(uri: &str) -> Option<PathBuf> {
    let path = uri.strip_prefix("file://")?;
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let path = PathBuf::from(decoded.as_ref());
    Some(path.parent()?.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_become_directories() {
        assert_eq!(
            dir_of("file:///work/run%20books/a%C3%A9.yaml"),
            Some(PathBuf::from("/work/run books"))
        );
        assert_eq!(dir_of("untitled:Untitled-1"), None);
        assert_eq!(dir_of("file:///%"), Some(PathBuf::from("/")));
        assert!(dir_of("file://%FF/x").is_none());
    }
}
