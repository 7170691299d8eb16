//! What a step's templates name of the run's context, so a task (or a report line) renders
//! against only that part instead of a copy of the whole context: with thousands of
//! `for_each` items and a large context, copying it per item dominates.

use serde_json::{Map, Value};

/// The parts of the template context a set of templates names: top-level keys, each whole
/// (`None`) or only some of its keys (`steps.a.outputs` names `a` of `steps`). `item` and
/// `index` are set per task and left out.
#[derive(Debug, Default)]
pub(crate) struct Names(
    std::collections::BTreeMap<String, Option<std::collections::BTreeSet<String>>>,
);

impl Names {
    /// The part of `base` named: the same values at the same paths, so a template renders
    /// against it exactly as against `base` (a path `base` lacks is missing here too).
    pub(crate) fn pick(&self, base: &Value) -> Value {
        let mut out = Map::new();
        for (root, keys) in &self.0 {
            let Some(value) = base.get(root) else {
                continue;
            };
            let value = match (keys, value) {
                (Some(keys), Value::Object(map)) => Value::Object(
                    keys.iter()
                        .filter_map(|k| Some((k.clone(), map.get(k)?.clone())))
                        .collect(),
                ),
                _ => value.clone(),
            };
            out.insert(root.clone(), value);
        }
        Value::Object(out)
    }
}

/// What the templates of a `with` tree name of the context, or `None` when that cannot be
/// told for sure (a template that does not parse, a path inside a block, a path segment that
/// is not a plain name): then the whole context is used.
pub(crate) fn names_of(tree: &Value) -> Option<Names> {
    fn walk(tree: &Value, names: &mut Names) -> Option<()> {
        match tree {
            Value::String(s) if tenure_runbook::template::contains_expression(s) => {
                let analysis = tenure_runbook::template::analyze(s).ok()?;
                for path in &analysis.paths {
                    let plain = |seg: &String| {
                        !seg.is_empty()
                            && seg
                                .chars()
                                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    };
                    if path.scoped || !path.segments.first().is_some_and(plain) {
                        return None;
                    }
                    let root = &path.segments[0];
                    if root == "item" || root == "index" {
                        continue;
                    }
                    match path.segments.get(1) {
                        Some(key) if plain(key) => {
                            if let Some(keys) = names
                                .0
                                .entry(root.clone())
                                .or_insert_with(|| Some(Default::default()))
                            {
                                keys.insert(key.clone());
                            }
                        }
                        Some(_) => return None,
                        None => {
                            names.0.insert(root.clone(), None);
                        }
                    }
                }
                Some(())
            }
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, names)),
            Value::Object(map) => map.values().try_for_each(|v| walk(v, names)),
            _ => Some(()),
        }
    }
    let mut names = Names::default();
    walk(tree, &mut names)?;
    Some(names)
}
