//! The writes of one operation or batch, collected and sent together. On SQLite they go as
//! one multi-statement query (one round trip to the connection's thread instead of one per
//! statement), with anonymous `?` parameters where every statement takes its `$1..$n` in
//! order: SQLite looks named parameters up by a linear scan, so thousands of `$n` in one
//! query cost quadratic time. On PostgreSQL, whose prepared statements hold one command each,
//! one by one.

use sqlx::AnyConnection;

use super::backend::Backend;
use super::Error;

/// A bound value.
#[derive(Clone, Debug)]
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
    statements: Vec<(String, Vec<Bind>)>,
}

impl Writes {
    /// Adds a statement.
    pub(crate) fn push(&mut self, sql: impl Into<String>, binds: Vec<Bind>) {
        self.statements.push((sql.into(), binds));
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
    use super::{anonymous, renumber};

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
