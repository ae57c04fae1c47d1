//! Reading a monitors file: TOML in the document's shape, `${VAR}` references expanded from
//! the environment of whoever applies it, literal secrets refused, and every problem named by
//! file, line and field.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};
use toml_edit::{ImDocument, Item};

use serde::de::DeserializeOwned;

/// Longest `source` name.
pub const MAX_SOURCE: usize = 200;

/// One problem in a monitors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based; `None` when the field is not in the file (a default that is refused).
    pub line: Option<usize>,
    /// `servers[2].url`; empty for a problem of the whole file.
    pub field: String,
    pub message: String,
}

/// Every problem found in a file (nothing of it is applied).
#[derive(Debug, Clone, thiserror::Error)]
pub struct FileErrors {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if p.field.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": {}: {}", p.field, p.message)?;
            }
        }
        Ok(())
    }
}

/// A monitors file read and expanded, kept with its text to name lines later.
pub struct MonitorsFile {
    /// The path as given (for messages).
    pub name: String,
    text: String,
    /// The document with references expanded and `source` set, as JSON.
    pub document: Value,
}

impl fmt::Debug for MonitorsFile {
    // The expanded document holds secrets: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorsFile")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MonitorsFile {
    /// Read `path` as a `D`, expanding references with `env` (the process environment in use).
    pub fn read<D: DeserializeOwned>(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, FileErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FileErrors {
            file: name.clone(),
            problems: vec![Problem {
                line: None,
                field: String::new(),
                message: format!("cannot read the monitors file: {e}"),
            }],
        })?;
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        Self::parse::<D>(&name, &source, text, env)
    }

    /// Check `text` as a `D` (called `name` in messages; objects marked as managed by `source`
    /// unless the file names its own).
    pub fn parse<D: DeserializeOwned>(
        name: &str,
        source: &str,
        text: String,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, FileErrors> {
        let fail = |problems| FileErrors {
            file: name.to_string(),
            problems,
        };
        // The shape first: unknown fields, wrong types, TOML syntax (serde stops at the first).
        if let Err(e) = toml::from_str::<D>(&text) {
            let line = e.span().map(|s| line_of(&text, s.start));
            return Err(fail(vec![Problem {
                line,
                field: String::new(),
                message: e.message().trim().to_string(),
            }]));
        }
        let doc = ImDocument::parse(text.as_str()).map_err(|e| {
            fail(vec![Problem {
                line: e.span().map(|s| line_of(&text, s.start)),
                field: String::new(),
                message: e.message().trim().to_string(),
            }])
        })?;
        let mut walk = Walk {
            text: &text,
            env,
            problems: Vec::new(),
        };
        let mut document = walk.item(doc.as_item(), &mut Vec::new());
        if !walk.problems.is_empty() {
            return Err(fail(walk.problems));
        }
        if let Value::Object(map) = &mut document {
            set_source(map, source).map_err(|p| fail(vec![p]))?;
        }
        drop(doc);
        Ok(MonitorsFile {
            name: name.to_string(),
            text,
            document,
        })
    }

    /// The document, typed.
    pub fn typed<D: DeserializeOwned>(&self) -> Result<D, FileErrors> {
        serde_json::from_value(self.document.clone()).map_err(|e| FileErrors {
            file: self.name.clone(),
            problems: vec![Problem {
                line: None,
                field: String::new(),
                message: e.to_string(),
            }],
        })
    }

    /// The line of `field` (`servers[2].headers.Authorization`), or of the nearest enclosing
    /// entry the file has.
    pub fn locate(&self, field: &str) -> Option<usize> {
        let doc = ImDocument::parse(self.text.as_str()).ok()?;
        let mut item = doc.as_item();
        let mut line = None;
        for seg in segments(field) {
            let next = match seg {
                Seg::Key(k) => item.get(k.as_str()),
                Seg::Index(i) => item.get(i),
            };
            match next {
                Some(found) => {
                    item = found;
                    if let Some(span) = found.span() {
                        line = Some(line_of(&self.text, span.start));
                    }
                }
                None => break,
            }
        }
        line
    }

    /// Problems the daemon found, as `(field, message)`, placed in this file.
    pub fn errors(&self, problems: impl IntoIterator<Item = (String, String)>) -> FileErrors {
        FileErrors {
            file: self.name.clone(),
            problems: problems
                .into_iter()
                .map(|(field, message)| Problem {
                    line: self.locate(&field),
                    field,
                    message,
                })
                .collect(),
        }
    }
}

/// `source`: the file's own (checked) or the file name.
fn set_source(map: &mut Map<String, Value>, source: &str) -> Result<(), Problem> {
    match map.get("source") {
        Some(Value::String(s)) if s.trim().is_empty() || s.len() > MAX_SOURCE => Err(Problem {
            line: None,
            field: "source".into(),
            message: format!("must be 1-{MAX_SOURCE} characters"),
        }),
        Some(_) => Ok(()),
        None => {
            map.insert("source".into(), Value::String(source.to_string()));
            Ok(())
        }
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `servers[2].headers.Authorization` → servers, 2, headers, Authorization.
fn segments(field: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push(Seg::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(body) = rest.strip_prefix('[') {
                let Some(close) = body.find(']') else { break };
                if let Ok(i) = body[..close].parse() {
                    out.push(Seg::Index(i));
                }
                rest = &body[close + 1..];
            }
        } else {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The walk over the file's tree that builds the expanded JSON document.
struct Walk<'a> {
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
}

impl Walk<'_> {
    fn item(&mut self, item: &Item, path: &mut Vec<Seg>) -> Value {
        match item {
            Item::None => Value::Null,
            Item::Value(v) => self.value(v, path),
            Item::Table(t) => self.entries(t.iter().map(|(k, v)| (k, v.clone())), path),
            Item::ArrayOfTables(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        path.push(Seg::Index(i));
                        let v = self.entries(t.iter().map(|(k, v)| (k, v.clone())), path);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
        }
    }

    fn entries<'k>(
        &mut self,
        entries: impl Iterator<Item = (&'k str, Item)>,
        path: &mut Vec<Seg>,
    ) -> Value {
        let mut map = Map::new();
        for (k, v) in entries {
            path.push(Seg::Key(k.to_string()));
            let value = self.item(&v, path);
            path.pop();
            map.insert(k.to_string(), value);
        }
        Value::Object(map)
    }

    fn value(&mut self, v: &toml_edit::Value, path: &mut Vec<Seg>) -> Value {
        use toml_edit::Value as T;
        match v {
            T::String(s) => {
                let line = v.span().map(|s| line_of(self.text, s.start));
                Value::String(self.string(s.value(), path, line))
            }
            T::Integer(i) => Value::from(*i.value()),
            T::Float(f) => Value::from(*f.value()),
            T::Boolean(b) => Value::Bool(*b.value()),
            // Times are taken as RFC 3339 text, as the API takes them.
            T::Datetime(d) => Value::String(d.value().to_string()),
            T::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        path.push(Seg::Index(i));
                        let v = self.value(x, path);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
            T::InlineTable(t) => {
                self.entries(t.iter().map(|(k, v)| (k, Item::Value(v.clone()))), path)
            }
        }
    }

    /// A string with its references expanded; a secret written literally is a problem.
    fn string(&mut self, raw: &str, path: &[Seg], line: Option<usize>) -> String {
        let field = path_text(path);
        if let Some(message) = literal_secret(path, raw) {
            self.problems.push(Problem {
                line,
                field,
                message,
            });
            return String::new();
        }
        match expand(raw, self.env) {
            Ok(text) => text,
            Err(message) => {
                self.problems.push(Problem {
                    line,
                    field,
                    message,
                });
                String::new()
            }
        }
    }
}

/// Whether a value at `path` is a credential that the file must give as a reference.
fn secret_field(path: &[Seg]) -> bool {
    let key = |i: usize| match path.get(i) {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    match (key(0), key(2)) {
        ("servers" | "channels", "headers") => path.len() == 4,
        ("servers", "oauth") => {
            path.len() == 4 && matches!(key(3), "client_secret" | "private_key")
        }
        ("channels", "secret" | "routing_key" | "api_key" | "bot_token") => path.len() == 3,
        _ => false,
    }
}

/// Why `raw` at `path` is a secret written in the file, if it is one.
fn literal_secret(path: &[Seg], raw: &str) -> Option<String> {
    let how = "write a reference such as \"${MY_SECRET}\" (or \"Bearer ${MY_SECRET}\") and set \
               that variable where the file is applied; secrets are never kept in the file";
    if secret_field(path) && !raw.contains("${") {
        return Some(format!("is a secret: {how}"));
    }
    let url_field = matches!(
        (path.first(), path.get(2)),
        (Some(Seg::Key(k)), Some(Seg::Key(f))) if (k == "servers" || k == "channels") && f == "url"
    );
    if url_field && let Some(part) = literal_url_credential(raw) {
        return Some(format!("{part} in the URL is a secret: {how}"));
    }
    None
}

/// The credential part of a URL written literally: a userinfo, or a query value (both are
/// sealed and shown as `***` by the API), unless given by a reference.
fn literal_url_credential(raw: &str) -> Option<&'static str> {
    let after_scheme = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && !userinfo.contains("${")
    {
        return Some("the user and password");
    }
    let query = raw
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""));
    let literal_value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('=').map(|(_, v)| v))
        .any(|v| !v.is_empty() && !v.contains("${"));
    literal_value.then_some("a query value")
}

/// `raw` with each `${NAME}` replaced by the variable's value.
fn expand(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("a reference is written ${NAME}: the closing } is missing".into());
        };
        let name = &after[..end];
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "'${{{name}}}' is not a reference: a variable name is letters, digits and _"
            ));
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("${{{name}}} is not set in the environment")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    /// The shape the tests read: a list of servers of a few fields.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        #[serde(default)]
        servers: Vec<Entry>,
        #[serde(default)]
        channels: Vec<Entry>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Entry {
        name: String,
        url: Option<String>,
        interval_seconds: Option<u32>,
        secret: Option<String>,
        headers: Option<std::collections::BTreeMap<String, String>>,
        oauth: Option<std::collections::BTreeMap<String, String>>,
    }

    fn parse(text: &str) -> Result<MonitorsFile, FileErrors> {
        MonitorsFile::parse::<Shape>("m.toml", "m.toml", text.to_string(), &env)
    }

    #[test]
    fn references_expand_and_source_defaults_to_the_file_name() {
        let f = parse(
            "[[servers]]\nname = \"A\"\nurl = \"https://a.example/mcp?key=${TOKEN}\"\n\
             headers = { Authorization = \"Bearer ${TOKEN}\" }\n",
        )
        .unwrap();
        assert_eq!(
            f.document["servers"][0]["headers"]["Authorization"],
            "Bearer s3cret"
        );
        assert_eq!(
            f.document["servers"][0]["url"],
            "https://a.example/mcp?key=s3cret"
        );
        assert_eq!(f.document["source"], "m.toml");
    }

    #[test]
    fn an_oauth_secret_or_key_is_a_reference_and_its_client_id_need_not_be() {
        let f = parse(
            "[[servers]]\nname = \"A\"\nurl = \"https://a.example/mcp\"\n\
             oauth = { client_id = \"probe\", client_secret = \"${TOKEN}\" }\n",
        )
        .unwrap();
        assert_eq!(f.document["servers"][0]["oauth"]["client_secret"], "s3cret");
        for field in ["client_secret", "private_key"] {
            let e = parse(&format!(
                "[[servers]]\nname = \"A\"\nurl = \"https://a.example/mcp\"\n\
                 oauth = {{ client_id = \"probe\", {field} = \"literal\" }}\n"
            ))
            .unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            assert_eq!(e.problems[0].field, format!("servers[0].oauth.{field}"));
            assert!(e.problems[0].message.contains("is a secret"), "{e}");
            assert!(!e.to_string().contains("literal"), "{e}");
        }
    }

    #[test]
    fn every_literal_secret_and_unset_reference_is_named_with_its_line() {
        let e = parse(
            "[[servers]]\nname = \"A\"\nurl = \"https://u:p@a.example/mcp\"\n\
             headers = { Authorization = \"Bearer abc\" }\n\n[[channels]]\nname = \"c\"\n\
             url = \"https://h.example/x\"\nsecret = \"${NOPE}\"\n",
        )
        .unwrap_err();
        let shown: Vec<_> = e
            .problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (Some(3), "servers[0].url"),
                (Some(4), "servers[0].headers.Authorization"),
                (Some(9), "channels[0].secret"),
            ]
        );
        assert!(
            e.to_string()
                .contains("m.toml:9: channels[0].secret: ${NOPE} is not set")
        );
        assert!(!e.to_string().contains("abc"), "{e}");
    }

    #[test]
    fn a_shape_error_names_its_line() {
        let e = parse("[[servers]]\nname = \"A\"\nintervall = 5\n").unwrap_err();
        assert_eq!(e.problems[0].line, Some(3));
        assert!(e.problems[0].message.contains("unknown field `intervall`"));
    }

    #[test]
    fn fields_the_daemon_names_are_placed_in_the_file() {
        let f = parse(
            "[[servers]]\nname = \"A\"\nurl = \"x\"\n\n[[servers]]\nname = \"B\"\n\
             interval_seconds = 3\n",
        )
        .unwrap();
        assert_eq!(f.locate("servers[1].interval_seconds"), Some(7));
        // Not in the file: the entry's own line.
        assert_eq!(f.locate("servers[1].url"), Some(5));
        assert_eq!(
            segments("a[2].b.c"),
            vec![
                Seg::Key("a".into()),
                Seg::Index(2),
                Seg::Key("b".into()),
                Seg::Key("c".into())
            ]
        );
    }
}
