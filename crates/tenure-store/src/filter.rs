//! `WHERE` clauses built from the filters a caller gives: only the conditions asked for are in
//! the statement (so each can use its index), and every value is a bound parameter.

use crate::db::{self, Conn};

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Arg {
        Arg::Int(i)
    }
}

/// Conditions joined by `AND`, with their parameters in order.
#[derive(Debug, Default)]
pub(crate) struct Where {
    conds: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    /// Adds `cond`, in which each `?` stands for the next of `args`.
    pub(crate) fn and<const N: usize>(&mut self, cond: &str, args: [Arg; N]) -> &mut Self {
        self.and_all(cond, args.into())
    }

    /// [`Where::and`] with as many arguments as the condition has `?`.
    pub(crate) fn and_all(&mut self, cond: &str, args: Vec<Arg>) -> &mut Self {
        let n = args.len();
        debug_assert_eq!(cond.matches('?').count(), n, "{cond}");
        let mut out = String::with_capacity(cond.len() + 4 * n);
        for (i, part) in cond.split('?').enumerate() {
            if i > 0 {
                out.push_str(&format!("${}", self.args.len() + i));
            }
            out.push_str(part);
        }
        self.conds.push(out);
        self.args.extend(args);
        self
    }

    /// `col = value`, when a value is given.
    pub(crate) fn eq(&mut self, col: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.and(&format!("{col} = ?"), [v.into()]);
        }
        self
    }

    /// The next placeholder's number, for a clause written after the conditions (`LIMIT`).
    pub(crate) fn next(&self) -> usize {
        self.args.len() + 1
    }

    /// ` WHERE a AND b`, or nothing when there is no condition.
    pub(crate) fn sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }

    /// Binds the parameters, in order, to `q`.
    pub(crate) fn bind(&self, mut q: db::Query) -> db::Query {
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// Runs `SELECT ... {where} {tail}`: `tail` may use placeholders from [`Where::next`] on,
    /// bound to `extra`.
    pub(crate) async fn fetch(
        &self,
        c: &mut Conn,
        head: &str,
        tail: &str,
        extra: &[Arg],
    ) -> crate::Result<Vec<db::Row>> {
        let sql = format!("{head}{} {tail}", self.sql());
        let mut q = self.bind(db::query(db::AssertSqlSafe(sql)));
        for a in extra {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(c).await
    }
}

/// `text` as a `LIKE` pattern matching it anywhere, lowercased, its wildcards escaped with `\`
/// (the clause must say `ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    format!("%{}%", like_escaped(&text.to_lowercase()))
}

/// `text` with the `LIKE` wildcards `%` and `_` (and the escape `\` itself) escaped with `\`,
/// to match literally in a clause that says `ESCAPE '\'`.
pub(crate) fn like_escaped(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_in_order_and_only_given_conditions_appear() {
        let mut w = Where::default();
        w.eq("a", Some("x"))
            .eq("b", None)
            .and("(c >= ? AND c < ?)", [1.into(), 2.into()]);
        assert_eq!(w.sql(), " WHERE a = $1 AND (c >= $2 AND c < $3)");
        assert_eq!(w.next(), 4);
        assert_eq!(Where::default().sql(), "");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ada_L%"), r"%ada\_l\%%");
        assert_eq!(contains_pattern(r"a\b"), r"%a\\b%");
        assert_eq!(like_escaped("Ab_%"), r"Ab\_\%");
    }
}
