//! Address pools: which VIPs a namespace may use, pure and shared.
//!
//! The operator, the agents and the LoadBalancer Service allocator all ask
//! one [`AddressPolicy`] (pools + addresses denied whatever the pools say +
//! the namespace holding each address of a non-shared pool), so the three
//! enforcement points cannot disagree.
//!
//! Ownership rule (tenant isolation): an address of a pool that is not
//! shared belongs to one namespace at a time, the namespace of its oldest
//! VirtualService. When that namespace stops using it, the address is
//! *released*, but VirtualServices of other namespaces that already existed
//! at that moment do not inherit it: they were written while someone else
//! held the address, so they stay refused and must be recreated. Until the
//! last of them is gone the address stays reserved for the namespace that
//! released it ([`decide_owners`] keeps the entry with its release time).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_api::{
    AddressOwner, LabelSelector, LvsAddressPoolSpec, Object, PoolIndex, PoolSummary,
    VirtualServiceSpec,
};

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A CIDR block, normalised (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(v: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn mask(width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all & !((1u128 << (width - prefix)) - 1) & all
    }
}

fn host_mask(width: u8, prefix: u8) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & !mask(width, prefix)
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let (v, width) = bits(addr);
        (prefix <= width).then(|| Cidr {
            addr: from_bits(v & mask(width, prefix), width),
            prefix,
        })
    }
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr {
            addr,
            prefix: bits(addr).1,
        }
    }
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, wa) = bits(self.addr);
        let (b, wb) = bits(ip);
        wa == wb && (b & mask(wa, self.prefix)) == a
    }
    /// First and last address of the block.
    pub fn first_last(&self) -> (IpAddr, IpAddr) {
        let (a, w) = bits(self.addr);
        (self.addr, from_bits(a | host_mask(w, self.prefix), w))
    }
    fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The smallest list of CIDRs covering `first..=last` (same family, first <= last).
fn range_to_cidrs(first: IpAddr, last: IpAddr) -> Vec<Cidr> {
    let (mut lo, width) = bits(first);
    let (hi, _) = bits(last);
    let mut out = Vec::new();
    loop {
        // The largest block starting at `lo` that is aligned and ends <= hi.
        let mut size_bits = if lo == 0 {
            width
        } else {
            (lo.trailing_zeros() as u8).min(width)
        };
        while size_bits > 0 {
            let span = if size_bits == 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            if lo.checked_add(span).is_some_and(|end| end <= hi) {
                break;
            }
            size_bits -= 1;
        }
        out.push(Cidr {
            addr: from_bits(lo, width),
            prefix: width - size_bits,
        });
        let span = if size_bits == 128 {
            u128::MAX
        } else {
            (1u128 << size_bits) - 1
        };
        match lo.checked_add(span) {
            Some(end) if end < hi => lo = end + 1,
            _ => break,
        }
    }
    out
}

const ALLOWED_FORMS: &str =
    "a CIDR (192.0.2.0/24, 2001:db8::/120), a single address, or a range first-last of one family";

/// Parses one `spec.addresses` entry into CIDRs.
pub fn parse_entry(entry: &str) -> Result<Vec<Cidr>, String> {
    let e = entry.trim();
    let bad = |why: &str| format!("{entry:?}: {why}; expected {ALLOWED_FORMS}");
    if let Some((a, p)) = e.split_once('/') {
        let addr: IpAddr = a.trim().parse().map_err(|_| bad("not an IP address"))?;
        let prefix: u8 = p.trim().parse().map_err(|_| bad("bad prefix length"))?;
        let c = Cidr::new(addr, prefix).ok_or_else(|| bad("prefix length too long"))?;
        if c.addr != addr {
            return Err(bad(&format!("host bits set (did you mean {c}?)")));
        }
        return Ok(vec![c]);
    }
    if let Some((a, b)) = e.split_once('-') {
        let first: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| bad("range start not an IP address"))?;
        let last: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| bad("range end not an IP address"))?;
        if first.is_ipv4() != last.is_ipv4() {
            return Err(bad("range mixes IPv4 and IPv6"));
        }
        if bits(first).0 > bits(last).0 {
            return Err(bad("range start after its end"));
        }
        return Ok(range_to_cidrs(first, last));
    }
    let addr: IpAddr = e.parse().map_err(|_| bad("not an IP address"))?;
    Ok(vec![Cidr::host(addr)])
}

/// Parses every entry of `spec.addresses`; the error names the entry.
pub fn parse_addresses(entries: &[String]) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let mut c = parse_entry(e).map_err(|m| format!("spec.addresses[{i}]: {m}"))?;
        out.append(&mut c);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Why an address is refused whatever the pools say, if it is: loopback,
/// link-local, multicast, broadcast, unspecified.
pub fn builtin_denied(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            if a.is_unspecified() {
                Some("the unspecified address")
            } else if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_link_local() {
                Some("a link-local address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if a.is_broadcast() {
                Some("the broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return builtin_denied(IpAddr::V4(v4));
            }
            if a.is_unspecified() {
                Some("the unspecified address")
            } else if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_unicast_link_local() {
                Some("a link-local address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

/// One pool, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub cidrs: Vec<Cidr>,
    pub namespace_selector: Option<LabelSelector>,
    pub director_selector: Option<LabelSelector>,
    pub real_server_node_selector: Option<LabelSelector>,
    pub shared: bool,
    pub allow_all_directors: bool,
    pub auto_assign: bool,
}

impl Pool {
    /// Parses a pool's spec; the error names the entry.
    pub fn from_spec(name: &str, spec: &LvsAddressPoolSpec) -> Result<Pool, String> {
        Ok(Pool {
            name: name.to_string(),
            cidrs: parse_addresses(&spec.addresses)?,
            namespace_selector: spec.namespace_selector.clone(),
            director_selector: spec.director_selector.clone(),
            real_server_node_selector: spec.real_server_node_selector.clone(),
            shared: spec.shared,
            allow_all_directors: spec.allow_all_directors,
            auto_assign: spec.auto_assign,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
    }

    /// Whether the pool admits a namespace. `labels: None` means the
    /// caller does not know the namespace's labels (an agent): only the
    /// name label is known, and a selector is judged on that alone.
    pub fn admits(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(sel) = &self.namespace_selector else {
            return true;
        };
        match labels {
            Some(l) => {
                if l.contains_key(NAMESPACE_NAME_LABEL) {
                    sel.matches(l)
                } else {
                    let mut l = l.clone();
                    l.insert(NAMESPACE_NAME_LABEL.into(), namespace.into());
                    sel.matches(&l)
                }
            }
            None => {
                let l = BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())]);
                sel.matches(&l)
            }
        }
    }

    /// Whether the pool lets a node direct its addresses.
    pub fn director_allowed(&self, node_labels: &BTreeMap<String, String>) -> bool {
        self.director_selector
            .as_ref()
            .is_none_or(|s| s.matches(node_labels))
    }

    /// Whether a VirtualService in this pool may name the node as a DR/TUN
    /// realserver.
    pub fn real_server_node_allowed(&self, node_labels: &BTreeMap<String, String>) -> bool {
        self.real_server_node_selector
            .as_ref()
            .is_some_and(|s| s.matches(node_labels))
    }

    /// The summary the admission policy reads.
    pub fn summary(&self) -> PoolSummary {
        PoolSummary {
            name: self.name.clone(),
            cidrs: self.cidrs.iter().map(ToString::to_string).collect(),
            namespace_selector: self.namespace_selector.clone(),
            shared: self.shared,
            allow_all_directors: self.allow_all_directors,
        }
    }
}

/// Why a VIP is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAllowed {
    /// Built-in deny list or a denied address (node, API server).
    Denied { address: IpAddr, why: String },
    /// No pool contains the address.
    OutsidePools { address: IpAddr, pools: Vec<String> },
    /// Pools contain it, but none admits the namespace.
    NamespaceNotAdmitted {
        address: IpAddr,
        namespace: String,
        pools: Vec<String>,
    },
    /// Another namespace holds the address (pool not shared).
    Held {
        address: IpAddr,
        holder: String,
        pool: String,
    },
    /// Allocation: no free address in the pools that admit the namespace.
    Exhausted {
        namespace: String,
        pools: Vec<String>,
    },
    /// An empty director selector (every node) in a pool that does not
    /// allow it.
    AllDirectors { pool: String },
}

impl NotAllowed {
    /// A CamelCase reason for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            NotAllowed::Denied { .. } => "AddressDenied",
            NotAllowed::OutsidePools { .. } => "OutsidePools",
            NotAllowed::NamespaceNotAdmitted { .. } => "NamespaceNotAdmitted",
            NotAllowed::Held { .. } => "AddressHeld",
            NotAllowed::Exhausted { .. } => "PoolsExhausted",
            NotAllowed::AllDirectors { .. } => "DirectorSelectorRequired",
        }
    }
}

fn names(pools: &[String]) -> String {
    if pools.is_empty() {
        "no pools exist".into()
    } else {
        format!("pools: {}", pools.join(", "))
    }
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("spec.address"))
    }
}

impl NotAllowed {
    /// The message, naming the VIP as a value of `field` (`spec.address`, or
    /// `spec.fwmarkMatch.addresses` for a fwmark service's match address).
    pub fn message(&self, field: &str) -> String {
        use std::fmt::Write as _;
        let mut f = String::new();
        let _ = match self {
            NotAllowed::Denied { address, why } => {
                write!(f, "{field}: {address} is {why}; no pool may hand it out")
            }
            NotAllowed::OutsidePools { address, pools } => write!(
                f,
                "{field}: {address} lies in no LvsAddressPool ({})",
                names(pools)
            ),
            NotAllowed::NamespaceNotAdmitted {
                address,
                namespace,
                pools,
            } => write!(
                f,
                "{field}: {address} lies in LvsAddressPool {}, which does not admit namespace {namespace}",
                pools.join(", ")
            ),
            NotAllowed::Held {
                address,
                holder,
                pool,
            } => write!(
                f,
                "{field}: {address} of LvsAddressPool {pool} (not shared) is held by namespace {holder}"
            ),
            NotAllowed::Exhausted { namespace, pools } => write!(
                f,
                "no free address for namespace {namespace} in the pools that admit it and assign automatically ({})",
                names(pools)
            ),
            NotAllowed::AllDirectors { pool } => write!(
                f,
                "spec.directors.nodeSelector: empty (every node a director), but LvsAddressPool {pool} does not allow all directors (allowAllDirectors); select the director nodes"
            ),
        };
        f
    }
}

impl std::error::Error for NotAllowed {}

/// Pools, denied addresses and owners: the whole VIP policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressPolicy {
    /// Sorted by name.
    pools: Vec<Pool>,
    /// Address -> why (node address, API server, ...).
    denied: BTreeMap<IpAddr, String>,
    /// Address -> holding namespace (non-shared pools only).
    owners: BTreeMap<IpAddr, String>,
    /// Every namespace's labels, when known (the operator); an agent does
    /// not watch Namespaces and judges selectors on the name label alone.
    namespaces: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl AddressPolicy {
    pub fn new(mut pools: Vec<Pool>) -> Self {
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        pools.dedup_by(|b, a| a.name == b.name);
        AddressPolicy {
            pools,
            ..Default::default()
        }
    }

    /// Refuses an address whatever the pools say; `why` completes
    /// "spec.address: ADDR is ...".
    pub fn deny(&mut self, address: IpAddr, why: impl Into<String>) {
        self.denied.entry(address).or_insert_with(|| why.into());
    }

    /// Records the namespace holding an address.
    pub fn set_owner(&mut self, address: IpAddr, namespace: impl Into<String>) {
        self.owners.insert(address, namespace.into());
    }

    /// Takes the denied addresses and owners of a pool's `status.index`
    /// (what an agent knows from the operator). Entries that do not parse
    /// are skipped.
    pub fn with_index(mut self, index: &PoolIndex) -> Self {
        for d in &index.denied_addresses {
            if let Ok(a) = d.parse() {
                self.deny(a, "denied by the operator (a node or API server address)");
            }
        }
        for o in &index.owners {
            if let Ok(a) = o.address.parse() {
                self.set_owner(a, o.namespace.clone());
            }
        }
        self
    }

    /// Sets every namespace's labels (a namespace missing here has none).
    pub fn set_namespaces(&mut self, namespaces: BTreeMap<String, BTreeMap<String, String>>) {
        self.namespaces = Some(namespaces);
    }

    /// A namespace's labels as far as known (see `namespaces`).
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces
            .as_ref()
            .map(|m| m.get(namespace).unwrap_or(&NO_LABELS))
    }

    /// Whether a VirtualService is allowed: each of its VIPs (a fwmark
    /// service without `fwmarkMatch` has none and needs no pool) lies in a
    /// pool admitting its namespace and not held by another, and its
    /// director selector is not empty unless that pool allows all
    /// directors. The pool of the first VIP, if any.
    pub fn check(&self, vs: &Object<VirtualServiceSpec>) -> Result<Option<&Pool>, NotAllowed> {
        let ns = vs.meta.namespace.as_str();
        let mut first = None;
        // Every VIP: a fwmark service marks (and its directors hold) each
        // of its match addresses.
        for addr in vs.spec.vips() {
            let pool = self.vip_allowed(ns, self.namespace_labels(ns), addr)?;
            if vs.spec.directors.node_selector.is_empty() && !pool.allow_all_directors {
                return Err(NotAllowed::AllDirectors {
                    pool: pool.name.clone(),
                });
            }
            first.get_or_insert(pool);
        }
        Ok(first)
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn owner(&self, address: IpAddr) -> Option<&str> {
        self.owners.get(&address).map(String::as_str)
    }

    /// Denied addresses, sorted.
    pub fn denied(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.denied.keys().copied()
    }

    fn pool_names(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.name.clone()).collect()
    }

    /// Why an address is refused whatever the pools say.
    pub fn denied_reason(&self, address: IpAddr) -> Option<String> {
        builtin_denied(address)
            .map(str::to_string)
            .or_else(|| self.denied.get(&address).cloned())
    }

    /// The pool that lets `namespace` use `address`, ignoring who holds it.
    pub fn pool_for(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
        address: IpAddr,
    ) -> Result<&Pool, NotAllowed> {
        if let Some(why) = self.denied_reason(address) {
            return Err(NotAllowed::Denied { address, why });
        }
        let containing: Vec<String> = self
            .pools
            .iter()
            .filter(|p| p.contains(address))
            .map(|p| p.name.clone())
            .collect();
        if containing.is_empty() {
            return Err(NotAllowed::OutsidePools {
                address,
                pools: self.pool_names(),
            });
        }
        let mut admitting: Vec<&Pool> = self
            .pools
            .iter()
            .filter(|p| p.contains(address) && p.admits(namespace, labels))
            .collect();
        // A shared pool wins over a non-shared one: it imposes less.
        admitting.sort_by_key(|p| !p.shared);
        admitting
            .first()
            .copied()
            .ok_or_else(|| NotAllowed::NamespaceNotAdmitted {
                address,
                namespace: namespace.to_string(),
                pools: containing,
            })
    }

    /// Whether a VirtualService of `namespace` may use `address` as its VIP;
    /// the pool that allows it.
    pub fn vip_allowed(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
        address: IpAddr,
    ) -> Result<&Pool, NotAllowed> {
        let pool = self.pool_for(namespace, labels, address)?;
        if !pool.shared
            && let Some(holder) = self.owners.get(&address)
            && holder != namespace
        {
            return Err(NotAllowed::Held {
                address,
                holder: holder.clone(),
                pool: pool.name.clone(),
            });
        }
        Ok(pool)
    }

    /// An address for a LoadBalancer Service of `namespace`: the requested
    /// one if allowed (autoAssign does not matter then), else the first
    /// address of the first pool (name order) that admits the namespace,
    /// assigns automatically and has an address that is neither denied,
    /// held by another namespace nor in `in_use`. Network and broadcast
    /// addresses of IPv4 blocks wider than /31 are skipped.
    pub fn allocate(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
        in_use: &BTreeSet<IpAddr>,
        requested: Option<IpAddr>,
    ) -> Result<IpAddr, NotAllowed> {
        if let Some(r) = requested {
            self.vip_allowed(namespace, labels, r)?;
            return Ok(r);
        }
        let mut tried = Vec::new();
        for p in &self.pools {
            if !p.auto_assign || !p.admits(namespace, labels) {
                continue;
            }
            tried.push(p.name.clone());
            for c in &p.cidrs {
                if let Some(a) = self.first_free(p, c, namespace, in_use) {
                    return Ok(a);
                }
            }
        }
        Err(NotAllowed::Exhausted {
            namespace: namespace.to_string(),
            pools: tried,
        })
    }

    fn first_free(
        &self,
        pool: &Pool,
        c: &Cidr,
        namespace: &str,
        in_use: &BTreeSet<IpAddr>,
    ) -> Option<IpAddr> {
        let (lo, width) = bits(c.addr);
        let hi = lo | host_mask(width, c.prefix);
        let skip_edges = width == 32 && c.prefix < 31;
        let mut v = lo;
        loop {
            let a = from_bits(v, width);
            let edge = skip_edges && (v == lo || v == hi);
            let free = !edge
                && !in_use.contains(&a)
                && self.denied_reason(a).is_none()
                && (pool.shared || self.owners.get(&a).is_none_or(|o| o == namespace));
            if free {
                return Some(a);
            }
            if v == hi {
                return None;
            }
            v += 1;
        }
    }

    /// Pairs of pools sharing addresses, each pair once, in name order.
    pub fn overlaps(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, a) in self.pools.iter().enumerate() {
            for b in &self.pools[i + 1..] {
                if a.cidrs
                    .iter()
                    .any(|x| b.cidrs.iter().any(|y| x.overlaps(y)))
                {
                    out.push((a.name.clone(), b.name.clone()));
                }
            }
        }
        out
    }

    /// The index every pool's status carries.
    pub fn index(&self, owners: &[AddressOwner]) -> PoolIndex {
        let mut denied: Vec<IpAddr> = self.denied.keys().copied().collect();
        denied.sort();
        PoolIndex {
            pools: self.pools.iter().map(Pool::summary).collect(),
            denied_addresses: denied.iter().map(ToString::to_string).collect(),
            owners: owners.to_vec(),
        }
    }
}

/// One VIP claim, as [`decide_owners`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub namespace: String,
    pub address: IpAddr,
    /// creationTimestamp (RFC 3339); `None` sorts last.
    pub created: Option<String>,
}

/// The owners of addresses of non-shared pools, given every claim, the
/// owners last written (`previous`, with their release times) and the
/// current time (`now`, RFC 3339). See the module's ownership rule.
/// Claims the policy refuses for other reasons (denied, outside pools,
/// namespace not admitted) are ignored; `labels` gives namespace labels.
pub fn decide_owners(
    policy: &AddressPolicy,
    claims: &[Claim],
    labels: &dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    previous: &[AddressOwner],
    now: &str,
) -> Vec<AddressOwner> {
    let mut by_addr: BTreeMap<IpAddr, Vec<&Claim>> = BTreeMap::new();
    for c in claims {
        let l = labels(&c.namespace);
        match policy.pool_for(&c.namespace, l.as_ref(), c.address) {
            Ok(p) if !p.shared => by_addr.entry(c.address).or_default().push(c),
            _ => {}
        }
    }
    let prev: BTreeMap<IpAddr, &AddressOwner> = previous
        .iter()
        .filter_map(|o| Some((o.address.parse().ok()?, o)))
        .collect();
    let mut out = Vec::new();
    for (addr, mut cs) in by_addr {
        cs.sort_by(|a, b| {
            (a.created.is_none(), &a.created, &a.namespace).cmp(&(
                b.created.is_none(),
                &b.created,
                &b.namespace,
            ))
        });
        let owner = match prev.get(&addr) {
            Some(p) if cs.iter().any(|c| c.namespace == p.namespace) => AddressOwner {
                address: addr.to_string(),
                namespace: p.namespace.clone(),
                released: None,
            },
            Some(p) => {
                // The holder is gone: claims that existed when it left
                // keep the address reserved for it.
                let released = p.released.clone().unwrap_or_else(|| now.to_string());
                let stale = cs
                    .iter()
                    .any(|c| c.created.as_ref().is_none_or(|t| *t <= released));
                if stale {
                    AddressOwner {
                        address: addr.to_string(),
                        namespace: p.namespace.clone(),
                        released: Some(released),
                    }
                } else {
                    AddressOwner {
                        address: addr.to_string(),
                        namespace: cs[0].namespace.clone(),
                        released: None,
                    }
                }
            }
            None => AddressOwner {
                address: addr.to_string(),
                namespace: cs[0].namespace.clone(),
                released: None,
            },
        };
        out.push(owner);
    }
    out
}

#[cfg(test)]
mod tests;
