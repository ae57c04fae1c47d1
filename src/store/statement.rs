//! A statement as the store writes it: SQL with `?` placeholders and the values it binds, in
//! the portable column types. The SQL and the logic are written once over these; a
//! [`Dialect`](super::dialect::Dialect) numbers the placeholders and runs them.

use std::borrow::Cow;

/// One bound value, in the portable column types.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    /// TEXT (ids, enums as names, JSON).
    Text(Option<Cow<'a, str>>),
    /// BIGINT (times in Unix ms, counts).
    Int(Option<i64>),
    /// DOUBLE PRECISION (latencies).
    Real(Option<f64>),
    /// BOOLEAN.
    Bool(bool),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<String> for Arg<'a> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl<'a> From<i64> for Arg<'a> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl<'a> From<Option<i64>> for Arg<'a> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<f64> for Arg<'a> {
    fn from(v: f64) -> Self {
        Arg::Real(Some(v))
    }
}

impl<'a> From<Option<f64>> for Arg<'a> {
    fn from(v: Option<f64>) -> Self {
        Arg::Real(v)
    }
}

impl<'a> From<bool> for Arg<'a> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// SQL with `?` placeholders and the values they take, in order.
#[derive(Debug)]
pub struct Statement<'a> {
    pub sql: String,
    pub args: Vec<Arg<'a>>,
    /// Kept as a prepared statement on the connection. Off for text that varies with the
    /// row count, which would fill the statement cache with one-offs.
    pub reuse: bool,
}

impl<'a> Statement<'a> {
    /// A statement with fixed text (prepared once per connection).
    pub fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            args: Vec::new(),
            reuse: true,
        }
    }

    /// A statement whose text varies (an `IN (?, …)` list): not prepared for reuse.
    pub fn one_off(sql: impl Into<String>) -> Self {
        Statement {
            reuse: false,
            ..Statement::new(sql)
        }
    }

    /// Bind the next `?`.
    pub fn bind(mut self, v: impl Into<Arg<'a>>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Append to the SQL.
    pub fn push(mut self, sql: &str) -> Self {
        self.sql.push_str(sql);
        self
    }
}

/// `?, ?, …` for `n` values (at least one, so `IN ()` never reaches the database).
pub(super) fn marks(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}
