//! The journal: one checksummed JSON record per scoped sync that changed
//! the ledger, appended to `ledger.journal` and replayed over `ledger.json`
//! at load; a torn tail is cut off.

use std::path::Path;

use serde::{Deserialize, Serialize};

use lvs_ipvs::ServiceKey;

use crate::kernel::{AddrKey, FouPort};

use super::*;

/// Journal file name under the state directory: one JSON line per scoped
/// sync that changed the ledger, replayed over `ledger.json` at load.
pub const JOURNAL_FILE: &str = "ledger.journal";
/// Journal entries after which the next save rewrites `ledger.json` whole.
pub const COMPACT_AFTER: usize = 1000;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JournalService {
    key: ServiceKey,
    /// `None`: no longer owned.
    #[serde(default)]
    owned: Option<FileService>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JournalAddress {
    key: AddrKey,
    owned: bool,
}

/// One journal line: the new state of what a sync changed.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct JournalEntry {
    pub(super) seq: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    services: Vec<JournalService>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<JournalAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnels: Option<Vec<FileTunnel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fou_ports: Option<Vec<FouPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sysctls: Option<Vec<FileSysctl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    daemons: Option<Vec<FileDaemon>>,
}

impl JournalEntry {
    /// What changed from `before` to `after`; `None` when nothing did.
    pub(super) fn between(before: &LedgerPart, after: &LedgerPart) -> Option<Self> {
        let mut e = JournalEntry::default();
        for (k, s) in &after.services {
            if before.services.get(k) != Some(s) {
                e.services.push(JournalService {
                    key: *k,
                    owned: s.as_ref().map(|s| file_service(k, s)),
                });
            }
        }
        for k in before.services.keys() {
            if !after.services.contains_key(k) {
                e.services.push(JournalService {
                    key: *k,
                    owned: None,
                });
            }
        }
        for a in after.addresses.symmetric_difference(&before.addresses) {
            e.addresses.push(JournalAddress {
                key: a.clone(),
                owned: after.addresses.contains(a),
            });
        }
        if after.tunnels != before.tunnels {
            e.tunnels = Some(file_tunnels(&after.tunnels));
        }
        if after.fou_ports != before.fou_ports {
            e.fou_ports = Some(after.fou_ports.iter().copied().collect());
        }
        if after.sysctls != before.sysctls {
            e.sysctls = Some(file_sysctls(&after.sysctls));
        }
        if after.daemons != before.daemons {
            e.daemons = Some(file_daemons(&after.daemons));
        }
        let empty = e.services.is_empty()
            && e.addresses.is_empty()
            && e.tunnels.is_none()
            && e.fou_ports.is_none()
            && e.sysctls.is_none()
            && e.daemons.is_none();
        (!empty).then_some(e)
    }

    pub(super) fn replay(self, l: &mut Ledger) {
        for s in self.services {
            match s.owned {
                Some(f) => l.services.insert(
                    s.key,
                    OwnedService {
                        owner: f.owner,
                        dests: f.destinations.into_iter().collect(),
                    },
                ),
                None => l.services.remove(&s.key),
            };
        }
        for a in self.addresses {
            if a.owned {
                l.addresses.insert(a.key);
            } else {
                l.addresses.remove(&a.key);
            }
        }
        if let Some(t) = self.tunnels {
            l.tunnels = owned_tunnels(t);
        }
        if let Some(p) = self.fou_ports {
            l.fou_ports = p.into_iter().collect();
        }
        if let Some(s) = self.sysctls {
            l.sysctls = owned_sysctls(s);
        }
        if let Some(d) = self.daemons {
            l.daemons = owned_daemons(d);
        }
    }
}

/// Lock file under the state directory. A store holds an exclusive `flock`
/// on it for as long as it lives, so two agents (a daemon and a manual
/// `--once`, say) never write the same ledger; the holder writes its pid,
/// start time and command line into it so that the refused one can say who.
pub const LOCK_FILE: &str = "agent.lock";

/// One journal record on disk: `<crc32 of the JSON, 8 hex digits> <JSON>\n`.
pub(super) fn encode_record(entry: &JournalEntry) -> Vec<u8> {
    let json = serde_json::to_vec(entry).expect("journal serialization cannot fail");
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// A journal line (without its newline) as an entry, or why it is not one.
pub(super) fn decode_record(line: &[u8]) -> Result<JournalEntry, String> {
    if line.first() == Some(&b'{') {
        // Written before records carried a checksum.
        return serde_json::from_slice(line).map_err(|e| format!("not a journal entry: {e}"));
    }
    let (sum, json) = match line.split_at_checked(9) {
        Some((head, json)) if head[8] == b' ' => (&head[..8], json),
        _ => return Err("no checksum (8 hex digits and a space) at the start".into()),
    };
    let want = std::str::from_utf8(sum)
        .ok()
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "the checksum is not 8 hex digits".to_string())?;
    let got = crc32fast::hash(json);
    if got != want {
        return Err(format!(
            "checksum mismatch: the record says {want:08x}, its content sums to {got:08x}"
        ));
    }
    serde_json::from_slice(json)
        .map_err(|e| format!("checksum matches but not a journal entry: {e}"))
}

/// The journal's valid records, and where they end.
pub(super) struct JournalScan {
    pub(super) entries: Vec<JournalEntry>,
    /// Bytes from the start that hold complete, valid records.
    pub(super) good_end: u64,
    /// Why the bytes after `good_end` are not records (a torn tail).
    pub(super) torn: Option<String>,
}

/// Reads the records. Appends write one record at a time, and a failed or
/// interrupted append is cut off again (here at the next load, or by the
/// append itself), so only the last record can be incomplete or fail its
/// checksum: that tail is a write cut short (a crash, ENOSPC) whose sync
/// never went ahead, and is dropped. A bad record followed by a good one
/// cannot come from a crash of ours: the file was damaged (storage, a hand
/// edit), the history has a gap, and which objects the lost record owned is
/// unknown; that is corruption, and the ledger is quarantined like a corrupt
/// `ledger.json` (everything unknown counts as foreign, nothing is deleted).
pub(super) fn scan_journal(bytes: &[u8], path: &Path) -> Result<JournalScan, LedgerError> {
    let mut scan = JournalScan {
        entries: Vec::new(),
        good_end: 0,
        torn: None,
    };
    let mut bad: Option<(usize, String)> = None;
    let (mut pos, mut line_no) = (0, 0);
    while pos < bytes.len() {
        line_no += 1;
        let (decoded, next) = match bytes[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (decode_record(&bytes[pos..pos + i]), pos + i + 1),
            None => (
                Err("no newline at its end (a write cut short)".to_string()),
                bytes.len(),
            ),
        };
        match decoded {
            Ok(entry) => {
                if let Some((n, why)) = bad.take() {
                    return Err(LedgerError::Corrupt {
                        path: path.to_path_buf(),
                        source: format!(
                            "journal line {n}: {why}; valid records follow it (line {line_no}), so the file was damaged rather than cut short by a crash"
                        )
                        .into(),
                    });
                }
                scan.entries.push(entry);
                scan.good_end = next as u64;
            }
            Err(why) => {
                bad.get_or_insert((line_no, why));
            }
        }
        pos = next;
    }
    scan.torn = bad.map(|(n, why)| format!("journal line {n}: {why}"));
    Ok(scan)
}
