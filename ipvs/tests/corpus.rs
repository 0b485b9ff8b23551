//! Crash-corpus regression: every file in tests/corpus/ (seeds taken from
//! the kernel captures, plus any input a fuzzer ever flagged) goes through
//! the same oracle as the `cargo fuzz` target in fuzz/, on stable.

use std::path::Path;

use lvs_ipvs::fuzzing::{check_datagram, fast_decoded};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .filter(|(name, _)| !name.ends_with(".md"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_inputs_do_not_panic() {
    let files = corpus();
    assert!(files.len() >= 40, "corpus has only {} files", files.len());
    for (name, data) in &files {
        let result = std::panic::catch_unwind(|| check_datagram(data));
        assert!(result.is_ok(), "corpus input {name} panicked");
    }
}

/// The full read decodes dump entries on an allocation-free path; the
/// captured kernel dumps in the corpus must take it (the oracle checks that
/// it agrees with the general decoder, here and under mutation below).
#[test]
fn kernel_dump_entries_take_the_fast_path() {
    let accepted: usize = corpus().iter().map(|(_, data)| fast_decoded(data)).sum();
    assert!(
        accepted >= 4,
        "only {accepted} corpus messages took the fast path"
    );
}

/// A stable-toolchain stand-in for the fuzzer: deterministic mutations of
/// every seed (bit flips, byte stores, length-field rewrites, truncation,
/// splicing). Anything it finds belongs in tests/corpus/.
#[test]
fn mutated_seeds_do_not_panic() {
    let files = corpus();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // LVS_MUTATIONS raises the per-seed count for a longer local hunt.
    let per_seed: usize = std::env::var("LVS_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut runs = 0;
    for (name, seed) in &files {
        for _ in 0..per_seed {
            let mut data = seed.clone();
            for _ in 0..=(next() % 4) {
                if data.is_empty() {
                    break;
                }
                let at = (next() as usize) % data.len();
                match next() % 6 {
                    0 => data[at] ^= 1 << (next() % 8),
                    1 => data[at] = next() as u8,
                    2 => {
                        // Rewrite a 16-bit field on a 4-byte boundary: NLA
                        // lengths and types live there.
                        let at = at & !3;
                        if at + 2 <= data.len() {
                            let v = match next() % 4 {
                                0 => 0,
                                1 => 4,
                                2 => u16::MAX,
                                _ => next() as u16,
                            };
                            data[at..at + 2].copy_from_slice(&v.to_ne_bytes());
                        }
                    }
                    3 => data.truncate(at),
                    4 => {
                        let (_, other) = &files[(next() as usize) % files.len()];
                        let from = (next() as usize) % other.len().max(1);
                        data.splice(at..at, other[from..].iter().copied().take(64));
                    }
                    _ => {
                        let len = data.len();
                        data[at..].rotate_left((next() as usize) % (len - at));
                    }
                }
            }
            let result = std::panic::catch_unwind(|| check_datagram(&data));
            if result.is_err() {
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                panic!("mutation of {name} panicked; input hex: {hex}");
            }
            runs += 1;
        }
    }
    assert!(runs >= files.len() * per_seed);
}
