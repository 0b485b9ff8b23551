//! Reading the manifests users `kubectl apply`, for the standalone agent and
//! the fixture tests: multi-document YAML with VirtualServices, RealServers,
//! LvsNodeProfiles and Nodes.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Deserialize;

use crate::nodeprofile::LvsNodeProfileSpec;
use crate::object::{Meta, NodeInfo, Object};
use crate::realserver::RealServerSpec;
use crate::validate::ValidationErrors;
use crate::virtualservice::VirtualServiceSpec;
use crate::{API_VERSION, GROUP};

mod block;

/// One parsed manifest. Short-lived, so its size does not matter.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    VirtualService(Object<VirtualServiceSpec>),
    RealServer(Object<RealServerSpec>),
    /// Cluster-scoped: the namespace is empty.
    NodeProfile(Object<LvsNodeProfileSpec>),
    Node(NodeInfo),
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// `message` names the line and column in the whole input.
    #[error("document {doc}: not valid YAML: {message}")]
    Yaml { doc: usize, message: String },
    #[error("document {doc}: {field}: {message}")]
    Field {
        doc: usize,
        field: String,
        message: String,
    },
    #[error("document {doc} ({kind} {name}): {errors}")]
    Invalid {
        doc: usize,
        kind: String,
        name: String,
        errors: ValidationErrors,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<Meta>,
    #[serde(default)]
    spec: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct NodeStatus {
    #[serde(default)]
    addresses: Vec<NodeAddress>,
}

#[derive(Deserialize)]
struct NodeAddress {
    #[serde(rename = "type")]
    type_: String,
    address: String,
}

fn field(doc: usize, field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        doc,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Turns a serde error at a path into the API server's wording where it has one.
fn spec_error(doc: usize, err: serde_path_to_error::Error<serde_json::Error>) -> ManifestError {
    path_error(doc, "spec", err)
}

/// A serde error at a path below `root` (`spec`, or empty for the whole
/// document). Errors from a [`serde_json::Value`] carry no line numbers; the
/// document number and the path say where.
fn path_error(
    doc: usize,
    root: &str,
    err: serde_path_to_error::Error<serde_json::Error>,
) -> ManifestError {
    let path = err.path().to_string();
    let path = if path == "." || path.is_empty() {
        if root.is_empty() { "document" } else { root }.to_string()
    } else if root.is_empty() {
        path
    } else {
        format!("{root}.{path}")
    };
    let inner = err.inner().to_string();
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return field(doc, &format!("{path}.{name}"), "Required value");
    }
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        // The path already ends at the unknown key.
        let name = rest.split('`').next().unwrap_or_default();
        let path = if path.ends_with(&format!(".{name}")) {
            path
        } else {
            format!("{path}.{name}")
        };
        return field(doc, &path, "field not declared in schema");
    }
    field(doc, &path, inner)
}

fn typed<S: serde::de::DeserializeOwned>(
    doc: usize,
    spec: Option<serde_json::Value>,
) -> Result<S, ManifestError> {
    let spec = spec.ok_or_else(|| field(doc, "spec", "Required value"))?;
    // Paths are tracked only to explain a failure: the same deserializer
    // runs again with them.
    match S::deserialize(&spec) {
        Ok(s) => Ok(s),
        Err(_) => serde_path_to_error::deserialize(spec).map_err(|e| spec_error(doc, e)),
    }
}

/// A typed spec that passed the admission rules.
fn checked<S: serde::de::DeserializeOwned>(
    doc: usize,
    kind: &str,
    meta: &Meta,
    spec: Option<serde_json::Value>,
    validate: fn(&S) -> Result<(), ValidationErrors>,
) -> Result<S, ManifestError> {
    let spec: S = typed(doc, spec)?;
    validate(&spec).map_err(|errors| ManifestError::Invalid {
        doc,
        kind: kind.to_string(),
        name: meta.key(),
        errors,
    })?;
    Ok(spec)
}

/// Below this size a manifest is parsed on the calling thread alone (a
/// thread costs about what a few hundred small documents do).
const SPLIT_MIN_BYTES: usize = 64 << 10;
/// At most this many threads parse one large manifest.
const SPLIT_MAX_PARTS: usize = 4;

/// Parses one or more YAML documents. Each VirtualService and RealServer is
/// validated with the admission rules; the first broken document is reported.
///
/// A large input (a generated file of thousands of objects) is cut at
/// document markers and its parts are parsed on several threads: YAML
/// parsing is most of the time an agent takes to read such a file.
pub fn parse(yaml: &str) -> Result<Vec<Manifest>, ManifestError> {
    let parts = if yaml.len() < SPLIT_MIN_BYTES {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(SPLIT_MAX_PARTS)
    };
    parse_in_parts(yaml, parts)
}

/// [`parse`] with the input cut into at most `parts` runs of whole
/// documents, each parsed on a thread of its own. The result is the same as
/// parsing the whole at once: the parts' objects in order, and on any error
/// the whole input is parsed again on this thread, so the error names the
/// same document number as it would have.
pub fn parse_in_parts(yaml: &str, parts: usize) -> Result<Vec<Manifest>, ManifestError> {
    let pieces = split_documents(yaml, parts);
    if pieces.len() < 2 {
        return parse_serial(yaml);
    }
    let results: Vec<Result<Vec<Manifest>, ManifestError>> = std::thread::scope(|s| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|piece| s.spawn(move || parse_serial(piece)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(mut m) => out.append(&mut m),
            Err(_) => return parse_serial(yaml),
        }
    }
    Ok(out)
}

/// Cuts `yaml` into at most `parts` pieces, each starting at a document
/// marker (`---` at the start of a line, then a space or the line's end:
/// YAML forbids that line inside any content), near equal in size. Input
/// with directives (`%` lines, which belong to the document after them) is
/// not cut.
fn split_documents(yaml: &str, parts: usize) -> Vec<&str> {
    let bytes = yaml.as_bytes();
    let marker_at = |i: usize| marker_line(bytes, i, b"---");
    if parts < 2 || yaml.starts_with('%') || yaml.contains("\n%") {
        return vec![yaml];
    }
    let mut pieces = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..parts {
        let target = (yaml.len() * k / parts).max(start);
        // The first marker line at or after the target.
        let mut cut = None;
        let mut i = target;
        while let Some(nl) = bytes[i..].iter().position(|&b| b == b'\n') {
            let line = i + nl + 1;
            if line >= yaml.len() {
                break;
            }
            if marker_at(line) {
                cut = Some(line);
                break;
            }
            i = line;
        }
        let Some(cut) = cut else { break };
        if cut > start {
            pieces.push(&yaml[start..cut]);
            start = cut;
        }
    }
    pieces.push(&yaml[start..]);
    pieces
}

/// Reads plain scalars as YAML 1.2's core schema does (as `kubectl` output
/// and the manifests' earlier reader did): `yes`, `on`, `0755` and `1_000`
/// are strings, only `true`/`false` are booleans.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    }
}

/// Whether the line starting at `i` is a document marker `---` or `...`.
fn marker_line(bytes: &[u8], i: usize, marker: &[u8; 3]) -> bool {
    let rest = &bytes[i..];
    rest.starts_with(marker) && matches!(rest.get(3), None | Some(b' ' | b'\t' | b'\n' | b'\r'))
}

/// Cuts a YAML stream into its documents, numbered as a YAML parser numbers
/// them: a document starts at a `---` line or at the first content line after
/// the stream start or a `...` line; comments, blank lines and directives
/// before it belong to it. Each piece parses on its own, so an error names
/// its document exactly.
fn documents(yaml: &str) -> Vec<&str> {
    let bytes = yaml.as_bytes();
    let mut docs = Vec::new();
    let mut start = 0;
    let mut open = false;
    let mut line = 0;
    while line < bytes.len() {
        let end = bytes[line..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |n| line + n + 1);
        if marker_line(bytes, line, b"---") {
            if open {
                docs.push(&yaml[start..line]);
                start = line;
            }
            open = true;
        } else if marker_line(bytes, line, b"...") {
            if open {
                docs.push(&yaml[start..end]);
                open = false;
            }
            start = end;
        } else if !open {
            let text = yaml[line..end].trim();
            if !(text.is_empty() || text.starts_with('#') || text.starts_with('%')) {
                open = true;
            }
        }
        line = end;
    }
    if open {
        docs.push(&yaml[start..]);
    }
    docs
}

/// A syntax error in `text`, a document cut from `yaml`, with the line
/// numbered as in `yaml`.
fn yaml_error(doc: usize, yaml: &str, text: &str, err: &serde_saphyr::Error) -> ManifestError {
    let start = (text.as_ptr() as usize).saturating_sub(yaml.as_ptr() as usize);
    let line_offset = yaml.as_bytes()[..start.min(yaml.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    let message = err.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
        line_offset: line_offset as u64,
    });
    ManifestError::Yaml { doc, message }
}

fn parse_serial(yaml: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for (i, text) in documents(yaml).into_iter().enumerate() {
        let doc = i + 1;
        let value: Option<serde_json::Value> = match block::parse(text) {
            Some(v) => Some(v),
            None => serde_saphyr::from_str_with_options(text, yaml_options())
                .map_err(|e| yaml_error(doc, yaml, text, &e))?,
        };
        let Some(value) = value.filter(|v| !v.is_null()) else {
            continue;
        };
        // `spec` and `status` are taken out as they are (any value fits
        // the envelope's fields for them); only the rest goes through it.
        // (`null` reads as absent, as `Option` reads it).
        let (value, spec, status) = match value {
            serde_json::Value::Object(mut m) => {
                let spec = m.remove("spec").filter(|v| !v.is_null());
                let status = m.remove("status").filter(|v| !v.is_null());
                (serde_json::Value::Object(m), spec, status)
            }
            v => (v, None, None),
        };
        let mut env: Envelope =
            serde_path_to_error::deserialize(value).map_err(|e| path_error(doc, "", e))?;
        env.spec = env.spec.or(spec);
        env.status = env.status.or(status);
        let kind = env
            .kind
            .ok_or_else(|| field(doc, "kind", "Required value"))?;
        let api_version = env
            .api_version
            .ok_or_else(|| field(doc, "apiVersion", "Required value"))?;
        let meta = env
            .metadata
            .ok_or_else(|| field(doc, "metadata.name", "Required value"))?;
        if meta.name.is_empty() {
            return Err(field(doc, "metadata.name", "Required value"));
        }
        let meta = Meta {
            namespace: if meta.namespace.is_empty() {
                "default".into()
            } else {
                meta.namespace
            },
            ..meta
        };
        match (api_version.as_str(), kind.as_str()) {
            (API_VERSION, "VirtualService") => {
                let spec = checked(doc, &kind, &meta, env.spec, VirtualServiceSpec::validate)?;
                out.push(Manifest::VirtualService(Object { meta, spec }));
            }
            (API_VERSION, "RealServer") => {
                let spec = checked(doc, &kind, &meta, env.spec, RealServerSpec::validate)?;
                out.push(Manifest::RealServer(Object { meta, spec }));
            }
            (API_VERSION, "LvsNodeProfile") => {
                let meta = Meta {
                    namespace: String::new(),
                    ..meta
                };
                let spec = checked(doc, &kind, &meta, env.spec, LvsNodeProfileSpec::validate)?;
                out.push(Manifest::NodeProfile(Object { meta, spec }));
            }
            ("v1", "Node") => {
                let status: NodeStatus = match env.status {
                    Some(s) => serde_path_to_error::deserialize(s)
                        .map_err(|e| path_error(doc, "status", e))?,
                    None => NodeStatus::default(),
                };
                let mut internal_ips = Vec::new();
                for a in status.addresses.iter().filter(|a| a.type_ == "InternalIP") {
                    let ip: IpAddr = a.address.parse().map_err(|_| {
                        field(
                            doc,
                            "status.addresses",
                            format!("{:?} is not an IP address", a.address),
                        )
                    })?;
                    internal_ips.push(ip);
                }
                out.push(Manifest::Node(NodeInfo {
                    name: meta.name,
                    labels: meta.labels,
                    internal_ips,
                }));
            }
            (v, k) if v.starts_with(GROUP) || k == "VirtualService" || k == "RealServer" => {
                return Err(field(
                    doc,
                    "apiVersion",
                    format!(
                        "{v} {k} is not supported: expected {API_VERSION} VirtualService, RealServer or LvsNodeProfile, or v1 Node"
                    ),
                ));
            }
            (v, k) => {
                return Err(field(
                    doc,
                    "kind",
                    format!(
                        "{v} {k} is not supported: expected {API_VERSION} VirtualService, RealServer or LvsNodeProfile, or v1 Node"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The objects of several manifests, split by kind.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    pub virtual_services: Vec<Object<VirtualServiceSpec>>,
    pub real_servers: Vec<Object<RealServerSpec>>,
    pub nodes: Vec<NodeInfo>,
    pub node_profiles: Vec<Object<LvsNodeProfileSpec>>,
    /// Position of each object by (kind, key), so adding stays linear in the
    /// number of objects however many files they come from.
    index: HashMap<(u8, String), usize>,
}

impl PartialEq for ManifestSet {
    fn eq(&self, other: &Self) -> bool {
        self.virtual_services == other.virtual_services
            && self.real_servers == other.real_servers
            && self.nodes == other.nodes
            && self.node_profiles == other.node_profiles
    }
}

const VS: u8 = 0;
const RS: u8 = 1;
const NODE: u8 = 2;
const PROFILE: u8 = 3;

/// Puts `item` at `key`: replaces the object at the indexed position, or appends.
fn upsert<T>(
    list: &mut Vec<T>,
    index: &mut HashMap<(u8, String), usize>,
    key: (u8, String),
    item: T,
) {
    match index.get(&key) {
        Some(&i) => list[i] = item,
        None => {
            index.insert(key, list.len());
            list.push(item);
        }
    }
}

impl ManifestSet {
    /// Adds parsed manifests; a later object with the same key replaces an earlier one.
    pub fn extend(&mut self, manifests: Vec<Manifest>) {
        // The lists are public; rebuild the index if someone changed them directly.
        let len = self.virtual_services.len()
            + self.real_servers.len()
            + self.nodes.len()
            + self.node_profiles.len();
        if self.index.len() != len {
            self.reindex();
        }
        for m in manifests {
            match m {
                Manifest::VirtualService(o) => {
                    let key = (VS, o.meta.key());
                    upsert(&mut self.virtual_services, &mut self.index, key, o);
                }
                Manifest::RealServer(o) => {
                    let key = (RS, o.meta.key());
                    upsert(&mut self.real_servers, &mut self.index, key, o);
                }
                Manifest::NodeProfile(o) => {
                    let key = (PROFILE, o.meta.name.clone());
                    upsert(&mut self.node_profiles, &mut self.index, key, o);
                }
                Manifest::Node(n) => {
                    let key = (NODE, n.name.clone());
                    upsert(&mut self.nodes, &mut self.index, key, n);
                }
            }
        }
    }

    fn reindex(&mut self) {
        let mut fresh = ManifestSet::default();
        let manifests = std::mem::take(&mut self.virtual_services)
            .into_iter()
            .map(Manifest::VirtualService)
            .chain(
                std::mem::take(&mut self.real_servers)
                    .into_iter()
                    .map(Manifest::RealServer),
            )
            .chain(
                std::mem::take(&mut self.nodes)
                    .into_iter()
                    .map(Manifest::Node),
            )
            .chain(
                std::mem::take(&mut self.node_profiles)
                    .into_iter()
                    .map(Manifest::NodeProfile),
            )
            .collect();
        fresh.extend(manifests);
        *self = fresh;
    }

    /// Labels by node name, for callers that only need those.
    pub fn node_labels(&self) -> BTreeMap<&str, &BTreeMap<String, String>> {
        self.nodes
            .iter()
            .map(|n| (n.name.as_str(), &n.labels))
            .collect()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod yaml_tests;

#[cfg(test)]
mod block_tests;
