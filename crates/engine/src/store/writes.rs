//! The writes of one operation or batch, collected and sent together. On SQLite they go as
//! one multi-statement query (one round trip to the connection's thread instead of one per
//! statement), with anonymous `?` parameters where every statement takes its `$1..$n` in
//! order: SQLite looks named parameters up by a linear scan, so thousands of `$n` in one
//! query cost quadratic time. On PostgreSQL, whose prepared statements hold one command each,
//! one by one.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::backend::Backend;
use super::Error;

/// A bound value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    OptInt(Option<i64>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_string())
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(v)
    }
}

impl From<&String> for Bind {
    fn from(v: &String) -> Self {
        Bind::Text(v.clone())
    }
}

impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::OptInt(v)
    }
}

impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::OptText(v)
    }
}

/// Statements (with `$1..$n` parameters each) waiting to be executed, in order.
#[derive(Default)]
pub(crate) struct Writes {
    /// Each with the run whose rows it alone touches, if it is one run's.
    statements: Vec<(String, Vec<Bind>, Option<String>)>,
}

impl Writes {
    /// Adds a statement (one that may touch the rows of several runs).
    pub(crate) fn push(&mut self, sql: impl Into<String>, binds: Vec<Bind>) {
        self.statements.push((sql.into(), binds, None));
    }

    /// Adds a statement that touches only rows of run `run` (its `runs` row, tasks, outputs
    /// and journal), so it may be sent before other runs' statements queued ahead of it.
    pub(crate) fn push_for(&mut self, run: &str, sql: impl Into<String>, binds: Vec<Bind>) {
        self.statements
            .push((sql.into(), binds, Some(run.to_string())));
    }

    /// Executes everything collected, in order.
    pub(crate) async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
    ) -> Result<(), Error> {
        let statements = std::mem::take(&mut self.statements);
        if statements.is_empty() {
            return Ok(());
        }
        let statements = if backend.multi_statement() {
            coalesce(statements)
        } else {
            statements.into_iter().map(|(t, b, _)| (t, b)).collect()
        };
        if backend.multi_statement() && statements.len() > 1 {
            let mut sql = String::new();
            let mut all = Vec::new();
            let unnamed = statements.iter().all(|(text, _)| anonymous(text).is_some());
            for (text, binds) in statements {
                if unnamed {
                    sql.push_str(&anonymous(&text).unwrap_or_default());
                } else {
                    sql.push_str(&renumber(&text, all.len()));
                }
                sql.push_str(";\n");
                all.extend(binds);
            }
            bind_all(sqlx::query(&sql).persistent(false), all)
                .execute(&mut *conn)
                .await?;
        } else {
            for (text, binds) in statements {
                bind_all(sqlx::query(&text), binds)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The most rows one coalesced statement takes.
const MAX_ROWS: usize = 400;

/// Statements of one text as one statement each, where the text has a form that takes many
/// rows: `INSERT ... VALUES (...)` as one multi-row insert (SQLite inserts the rows one after
/// another, each meeting its `ON CONFLICT` as the statements would), `UPDATE t SET ... WHERE
/// id = $n` as one `UPDATE ... FROM (VALUES ...)` (only while the ids differ: a second update
/// of one row goes in a later statement), and `DELETE FROM t WHERE c = $1` as one `IN` list.
/// A statement joins an earlier one of its text only past every statement of its own run and
/// every statement not confined to one run: the writes of one run keep their order, and runs
/// touch disjoint rows, so the result is the statements' in their order. SQLite prepares every
/// statement of a query anew and sends its connection's caller one message per statement:
/// fewer statements cost less of both.
fn coalesce(statements: Vec<(String, Vec<Bind>, Option<String>)>) -> Vec<(String, Vec<Bind>)> {
    struct Group {
        form: Option<Form>,
        rows: Vec<(String, Vec<Bind>)>,
    }
    let mut groups: Vec<Group> = Vec::new();
    // The last group holding a statement of each run, the latest group of each text that
    // takes rows, and the first group a statement may still join.
    let mut last_of_run: HashMap<String, usize> = HashMap::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut floor = 0;
    for (text, binds, run) in statements {
        let from = match &run {
            Some(r) => last_of_run.get(r).copied().unwrap_or(0).max(floor),
            None => groups.len().saturating_sub(1).max(floor),
        };
        let joined = open.get(&text).copied().filter(|&g| {
            let group = &groups[g];
            g >= from
                && group.rows.len() < MAX_ROWS
                && group.rows[0].1.len() == binds.len()
                && group
                    .form
                    .as_ref()
                    .is_some_and(|f| f.takes(&group.rows, &binds))
        });
        let at = match joined {
            Some(g) => {
                groups[g].rows.push((text, binds));
                g
            }
            None => {
                let form = Form::of(&text, binds.len());
                if form.is_some() {
                    open.insert(text.clone(), groups.len());
                }
                groups.push(Group {
                    form,
                    rows: vec![(text, binds)],
                });
                groups.len() - 1
            }
        };
        match run {
            Some(r) => {
                last_of_run.insert(r, at);
            }
            None => floor = at,
        }
    }
    groups
        .into_iter()
        .map(|g| match g.form {
            Some(form) => form.merge(g.rows),
            None => g.rows.into_iter().next().expect("a statement per group"),
        })
        .collect()
}

/// A statement text that several rows can share.
enum Form {
    /// `head VALUES (tuple) tail`.
    Insert {
        head: String,
        tuple: String,
        tail: String,
    },
    /// `UPDATE table SET col = $i, ... WHERE id = $key` (the parameters `$1..$n` in order).
    Update {
        table: String,
        columns: Vec<String>,
        key: usize,
    },
    /// `DELETE FROM table WHERE column = $1`.
    Delete { head: String },
}

impl Form {
    /// The form of `sql` taking `n` parameters, if it has one.
    fn of(sql: &str, n: usize) -> Option<Form> {
        if n == 0 || anonymous(sql).is_none() {
            return None;
        }
        if let Some(rest) = sql.strip_prefix("INSERT INTO ") {
            let at = rest.find(" VALUES (")?;
            let tuple_start = at + " VALUES ".len();
            let close = rest[tuple_start..].find(')')? + tuple_start;
            let tuple = &rest[tuple_start..=close];
            // Every parameter inside the tuple, none after it.
            if rest[close..].contains('$') || tuple.contains('(') && tuple.rfind('(') != Some(0) {
                return None;
            }
            return Some(Form::Insert {
                head: format!("INSERT INTO {}", &rest[..at]),
                tuple: tuple.to_string(),
                tail: rest[close + 1..].to_string(),
            });
        }
        if let Some(rest) = sql.strip_prefix("UPDATE ") {
            let (table, rest) = rest.split_once(" SET ")?;
            let (sets, key) = rest.split_once(" WHERE id = $")?;
            let key: usize = key.parse().ok()?;
            let mut columns = Vec::new();
            for (i, set) in sets.split(", ").enumerate() {
                let (column, value) = set.split_once(" = ")?;
                if value != format!("${}", i + 1)
                    || !column
                        .chars()
                        .all(|c| c == '_' || c.is_ascii_alphanumeric())
                {
                    return None;
                }
                columns.push(column.to_string());
            }
            if key != columns.len() + 1 || key != n || table.contains(' ') {
                return None;
            }
            return Some(Form::Update {
                table: table.to_string(),
                columns,
                key,
            });
        }
        if let Some(head) = sql.strip_suffix(" = $1") {
            let body = head.strip_prefix("DELETE FROM ")?;
            let (table, column) = body.split_once(" WHERE ")?;
            if n != 1 || table.contains(' ') || column.contains(' ') {
                return None;
            }
            return Some(Form::Delete {
                head: head.to_string(),
            });
        }
        None
    }

    /// Whether a statement with `binds` can join `group` (an update's rows must differ).
    fn takes(&self, group: &[(String, Vec<Bind>)], binds: &[Bind]) -> bool {
        match self {
            Form::Update { key, .. } => group.iter().all(|(_, b)| b[key - 1] != binds[key - 1]),
            Form::Insert { .. } | Form::Delete { .. } => true,
        }
    }

    /// One statement doing what the group's statements do, in their order.
    fn merge(self, mut group: Vec<(String, Vec<Bind>)>) -> (String, Vec<Bind>) {
        if group.len() == 1 {
            return group.pop().expect("one statement");
        }
        let width = group[0].1.len();
        let rows = group.len();
        let binds: Vec<Bind> = group.into_iter().flat_map(|(_, b)| b).collect();
        let sql = match self {
            Form::Insert { head, tuple, tail } => {
                let values: Vec<String> = (0..rows).map(|r| renumber(&tuple, r * width)).collect();
                format!("{head} VALUES {}{tail}", values.join(", "))
            }
            Form::Update {
                table,
                columns,
                key,
            } => {
                let tuple = format!(
                    "({})",
                    (1..=width)
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let values: Vec<String> = (0..rows).map(|r| renumber(&tuple, r * width)).collect();
                let sets: Vec<String> = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = v.column{}", i + 1))
                    .collect();
                format!(
                    "UPDATE {table} SET {} FROM (VALUES {}) AS v WHERE {table}.id = v.column{key}",
                    sets.join(", "),
                    values.join(", ")
                )
            }
            Form::Delete { head } => {
                let list: Vec<String> = (1..=rows).map(|i| format!("${i}")).collect();
                format!("{head} IN ({})", list.join(", "))
            }
        };
        (sql, binds)
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Int(v) => query.bind(v),
            Bind::Text(v) => query.bind(v),
            Bind::OptText(v) => query.bind(v),
            Bind::OptInt(v) => query.bind(v),
        };
    }
    query
}

/// `sql` with its parameters as anonymous `?`, if it takes `$1..$n` each once and in order
/// (then binding them in order is the same).
fn anonymous(sql: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = 0usize;
        let mut digits = 0;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            n = n.checked_mul(10)?.checked_add(d as usize)?;
            digits += 1;
            chars.next();
        }
        if digits == 0 || n != next {
            return None;
        }
        next += 1;
        out.push('?');
    }
    Some(out)
}

/// Shifts every `$n` parameter of `sql` by `offset`.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&format!("${}", n + offset)),
            Err(_) => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{anonymous, coalesce, renumber, Bind};

    fn texts(statements: &[(String, Vec<Bind>)]) -> Vec<&str> {
        statements.iter().map(|(t, _)| t.as_str()).collect()
    }

    #[test]
    fn statements_of_one_form_become_one_keeping_each_runs_order() {
        let ins = "INSERT INTO t (a, b, k) VALUES ($1, $2, 'x') ON CONFLICT (a) DO UPDATE SET b = excluded.b";
        let upd = "UPDATE t SET b = $1, c = $2 WHERE id = $3";
        let del = "DELETE FROM t WHERE id = $1";
        let s = |sql: &str, binds: Vec<i64>| {
            (
                sql.to_string(),
                binds.into_iter().map(Bind::Int).collect::<Vec<_>>(),
                None,
            )
        };
        let out = coalesce(vec![
            s(ins, vec![1, 2]),
            s(ins, vec![3, 4]),
            s(del, vec![7]),
            s(del, vec![8]),
            s(upd, vec![1, 2, 10]),
            s(upd, vec![3, 4, 11]),
            // The same row again: its own statement, after the others.
            s(upd, vec![5, 6, 10]),
            s(ins, vec![5, 6]),
        ]);
        assert_eq!(
            texts(&out),
            vec![
                "INSERT INTO t (a, b, k) VALUES ($1, $2, 'x'), ($3, $4, 'x') ON CONFLICT (a) DO UPDATE SET b = excluded.b",
                "DELETE FROM t WHERE id IN ($1, $2)",
                "UPDATE t SET b = v.column1, c = v.column2 FROM (VALUES ($1, $2, $3), ($4, $5, $6)) AS v WHERE t.id = v.column3",
                upd,
                ins,
            ]
        );
        let binds: Vec<Bind> = out.into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(
            binds,
            [1, 2, 3, 4, 7, 8, 1, 2, 10, 3, 4, 11, 5, 6, 10, 5, 6]
                .into_iter()
                .map(Bind::Int)
                .collect::<Vec<_>>()
        );
        // Statements of other runs join earlier ones of their text, never past a statement of
        // their own run or one of no single run.
        let r = |(sql, binds, _): (String, Vec<Bind>, Option<String>), run: &str| {
            (sql, binds, Some(run.to_string()))
        };
        let out = coalesce(vec![
            r(s(ins, vec![1, 2]), "a"),
            r(s(del, vec![1]), "a"),
            r(s(ins, vec![3, 4]), "b"),
            r(s(del, vec![2]), "b"),
            r(s(ins, vec![5, 6]), "a"),
            s(upd, vec![1, 2, 3]),
            r(s(del, vec![3]), "c"),
        ]);
        assert_eq!(
            texts(&out),
            vec![
                "INSERT INTO t (a, b, k) VALUES ($1, $2, 'x'), ($3, $4, 'x') ON CONFLICT (a) DO UPDATE SET b = excluded.b",
                "DELETE FROM t WHERE id IN ($1, $2)",
                ins,
                upd,
                del,
            ]
        );
        let binds: Vec<Bind> = out.into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(
            binds,
            [1, 2, 3, 4, 1, 2, 5, 6, 1, 2, 3, 3]
                .into_iter()
                .map(Bind::Int)
                .collect::<Vec<_>>()
        );
        // Forms it does not know stay as they are.
        let other = "UPDATE t SET b = $2 WHERE id = $1";
        let out = coalesce(vec![s(other, vec![1, 2]), s(other, vec![3, 4])]);
        assert_eq!(texts(&out), vec![other, other]);
    }

    #[test]
    fn parameters_taken_in_order_become_anonymous() {
        assert_eq!(
            anonymous("INSERT INTO t VALUES ($1, $2), ($3, $4)").as_deref(),
            Some("INSERT INTO t VALUES (?, ?), (?, ?)")
        );
        assert_eq!(anonymous("SELECT 1").as_deref(), Some("SELECT 1"));
        // Out of order, repeated or not a parameter: kept as they are.
        assert_eq!(anonymous("UPDATE t SET a = $2 WHERE b = $1"), None);
        assert_eq!(anonymous("SELECT $1 WHERE $1 > 0"), None);
        assert_eq!(anonymous("SELECT '$'"), None);
    }

    #[test]
    fn parameters_are_shifted_past_the_earlier_statements() {
        assert_eq!(
            renumber("UPDATE t SET a = $1, b = $2 WHERE id = $10", 3),
            "UPDATE t SET a = $4, b = $5 WHERE id = $13"
        );
        assert_eq!(renumber("SELECT $1", 0), "SELECT $1");
    }
}
