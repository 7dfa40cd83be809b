//! Statements written once for both backends, rendered per dialect.
//!
//! A `Statement` is SQL text with `?` placeholders and its arguments in order. SQLite runs the
//! text as it is; PostgreSQL runs `numbered()`, where the n-th `?` is `$n`. Statements built
//! here never hold a `?` anywhere else (no string literal contains one), so the rewrite is exact.

/// One argument of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    /// An event id: text to PostgreSQL, its 16 bytes to SQLite when it is a UUID.
    EventId(String),
    /// An event id or none (stored as `EventId` is).
    OptEventId(Option<String>),
    /// A flag: `BOOLEAN` to PostgreSQL, 0 or 1 to SQLite.
    Bool(bool),
    /// Nullable values, typed (PostgreSQL checks a NULL parameter's type too).
    OptInt(Option<i64>),
    OptText(Option<String>),
}

/// SQL with `?` placeholders and its arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Statement {
    /// The text with PostgreSQL's numbered placeholders.
    pub fn numbered(&self) -> String {
        numbered(&self.sql)
    }
}

/// `sql` with its `?` placeholders numbered `$1`, `$2`, … (PostgreSQL's form).
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A `WHERE` clause of the filters given: only those appear in the SQL, so the planner of
/// either database can pick the index that matches (`x IS NULL OR col = x` would hide every
/// index from it).
#[derive(Debug, Default)]
pub(crate) struct Filters {
    clauses: Vec<&'static str>,
    args: Vec<Arg>,
}

impl Filters {
    /// Adds `clause` (holding one `?`) when `value` is given.
    pub fn add(&mut self, clause: &'static str, value: Option<Arg>) -> &mut Self {
        if let Some(v) = value {
            self.clauses.push(clause);
            self.args.push(v);
        }
        self
    }

    /// Adds a clause without arguments.
    pub fn fixed(&mut self, clause: &'static str) -> &mut Self {
        self.clauses.push(clause);
        self
    }

    /// `head WHERE <filters> tail`, then `trailing` arguments (a LIMIT, say).
    pub fn statement(self, head: &str, tail: &str, trailing: Vec<Arg>) -> Statement {
        let mut sql = head.to_string();
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.clauses.join(" AND "));
        }
        sql.push(' ');
        sql.push_str(tail);
        let mut args = self.args;
        args.extend(trailing);
        Statement { sql, args }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_text_for_each_dialect() {
        let mut f = Filters::default();
        f.add("a = ?", Some(Arg::Int(1)))
            .add("b = ?", None)
            .add("c < ?", Some(Arg::Text("x".into())));
        let s = f.statement("SELECT * FROM t", "LIMIT ?", vec![Arg::Int(5)]);
        assert_eq!(s.sql, "SELECT * FROM t WHERE a = ? AND c < ? LIMIT ?");
        assert_eq!(
            s.numbered(),
            "SELECT * FROM t WHERE a = $1 AND c < $2 LIMIT $3"
        );
        assert_eq!(s.args.len(), 3);
        let none = Filters::default().statement("SELECT 1", "", vec![]);
        assert_eq!(none.sql, "SELECT 1 ");
    }
}
