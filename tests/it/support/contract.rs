//! Every API answer a test receives is checked against the daemon's own `/openapi.json`: the
//! status must be documented for the route, the body must validate against the documented
//! schema (a JSON Schema 2020-12 validator), and every member of every object must be
//! declared (a generated client would otherwise drop it). `TestApp::call` runs this on each
//! response, so the whole API suite doubles as the document's test.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

pub struct Contract {
    doc: Value,
}

impl Contract {
    pub fn new(doc: Value) -> Self {
        assert!(doc["paths"].is_object(), "not an OpenAPI document: {doc}");
        Contract { doc }
    }

    /// What about this answer disagrees with the document, naming the route.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        content_type: &str,
        body: &Value,
    ) -> Result<(), String> {
        let path = path.split('?').next().unwrap_or(path);
        let Some(template) = self.template_of(path) else {
            return Ok(()); // not a documented route (a page, a deliberately wrong path)
        };
        let route = format!("{method} {template}");
        let op = &self.doc["paths"][&template][method.as_str().to_ascii_lowercase()];
        if !op.is_object() {
            return Err(format!("{route}: not documented"));
        }
        let response = &op["responses"][status.as_str()];
        if !response.is_object() {
            return Err(format!(
                "{route}: answered {status}, which the document does not list; body: {body}"
            ));
        }
        let Some(content) = response["content"].as_object() else {
            return match body.as_str() {
                Some("") => Ok(()),
                _ => Err(format!(
                    "{route} {status}: documented without a body, answered {body}"
                )),
            };
        };
        let media = content_type.split(';').next().unwrap_or("").trim();
        let Some(schema) = content.get(media).map(|c| &c["schema"]) else {
            return Err(format!(
                "{route} {status}: answered {media:?}, documented {:?}",
                content.keys().collect::<Vec<_>>()
            ));
        };
        self.validate(schema, body)
            .map_err(|e| format!("{route} {status}: {e}\nbody: {body}"))
    }

    fn validate(&self, schema: &Value, body: &Value) -> Result<(), String> {
        let mut root = schema.clone();
        if let Some(obj) = root.as_object_mut() {
            obj.insert("components".into(), self.doc["components"].clone());
        }
        let validator = jsonschema::validator_for(&root)
            .map_err(|e| format!("the document's schema is invalid: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return Err(format!("the body does not match the document: {errors:?}"));
        }
        let mut undeclared = Vec::new();
        self.undeclared(schema, body, "", &mut undeclared);
        if !undeclared.is_empty() {
            return Err(format!(
                "members the document does not declare: {undeclared:?}"
            ));
        }
        Ok(())
    }

    /// The documented path template `path` is an instance of (`{name}` matches one segment).
    fn template_of(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .find(|t| {
                let ts: Vec<&str> = t.split('/').collect();
                ts.len() == segments.len()
                    && ts.iter().zip(&segments).all(|(t, s)| {
                        (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                    })
            })
            .cloned()
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                let target = &self.doc["components"]["schemas"][name];
                assert!(target.is_object(), "unresolvable $ref {r}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// The object schemas `schema` combines (itself, its `allOf` parts, and the branches of
    /// `oneOf`/`anyOf` that describe objects).
    fn object_parts<'a>(&'a self, schema: &'a Value, out: &mut Vec<&'a Value>) {
        let schema = self.resolve(schema);
        out.push(schema);
        for key in ["allOf", "oneOf", "anyOf"] {
            for part in schema[key].as_array().into_iter().flatten() {
                self.object_parts(part, out);
            }
        }
    }

    fn undeclared(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let mut parts = Vec::new();
        self.object_parts(schema, &mut parts);
        match value {
            Value::Object(members) => self.undeclared_members(&parts, members, at, out),
            Value::Array(items) => {
                for part in &parts {
                    if part["items"].is_object() {
                        for (i, item) in items.iter().enumerate() {
                            self.undeclared(&part["items"], item, &format!("{at}/{i}"), out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn undeclared_members(
        &self,
        parts: &[&Value],
        members: &Map<String, Value>,
        at: &str,
        out: &mut Vec<String>,
    ) {
        let declared: Map<String, Value> = parts
            .iter()
            .filter_map(|p| p["properties"].as_object())
            .flat_map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        let map_of = parts
            .iter()
            .map(|p| &p["additionalProperties"])
            .find(|a| a.is_object() || a.as_bool() == Some(true));
        if declared.is_empty() {
            // A map (`additionalProperties`) or a free-form object: its members are data.
            if let Some(values) = map_of.filter(|a| a.is_object()) {
                for (k, v) in members {
                    self.undeclared(values, v, &format!("{at}/{k}"), out);
                }
            }
            return;
        }
        for (k, v) in members {
            match declared.get(k) {
                Some(s) => self.undeclared(s, v, &format!("{at}/{k}"), out),
                None => out.push(format!("{at}/{k}")),
            }
        }
    }

    /// Schemas that let anything through (`{}` or `true`): a generated client cannot type them.
    pub fn untyped_schemas(&self) -> Vec<String> {
        let mut found = Vec::new();
        const SHAPES: [&str; 9] = [
            "type",
            "$ref",
            "allOf",
            "oneOf",
            "anyOf",
            "properties",
            "items",
            "enum",
            "const",
        ];
        let mut look = |at: String, s: &Value| {
            let untyped = match s {
                Value::Object(m) => !SHAPES.iter().any(|k| m.contains_key(*k)),
                other => other == &json!(true),
            };
            if untyped {
                found.push(at);
            }
        };
        for (name, s) in self.doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            walk(&format!("components/{name}"), s, &mut look);
        }
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            walk(&format!("paths{path}"), item, &mut look);
        }
        found
    }
}

/// Every subschema below `schema` (under `properties`, `items`, `allOf`…, `content`).
fn walk(at: &str, v: &Value, look: &mut impl FnMut(String, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}/{k}");
                match k.as_str() {
                    "schema" | "items" | "additionalProperties" => look(here.clone(), child),
                    _ => {}
                }
                if let Some(parts) = child.as_array().filter(|_| k.ends_with("Of")) {
                    for (i, part) in parts.iter().enumerate() {
                        look(format!("{here}/{i}"), part);
                    }
                }
                if let Some(props) = child.as_object().filter(|_| k == "properties") {
                    for (name, p) in props {
                        look(format!("{here}/{name}"), p);
                    }
                }
                // `example`s are data, not schemas.
                if k != "example" && k != "examples" {
                    walk(&here, child, look);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(&format!("{at}/{i}"), item, look);
            }
        }
        _ => {}
    }
}
