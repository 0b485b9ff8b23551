//! The probes both binaries answer, `/healthz` (restart me?) and `/readyz`
//! (send me work?), in one form: 200 `ok`, or 503 with the reason.
//!
//! What each probe checks is the binary's own (the agent: its sync loop and
//! first kernel write; the operator: its watches, caches and leader lease);
//! what a probe looks like on the wire is shared, so kubelet, operators of
//! the cluster and the labs read both the same way.

use hyper::StatusCode;

/// A process's liveness and readiness, each `Ok` or the reason it is not.
pub trait Probes {
    /// `/healthz`: Err when the process should be restarted.
    fn live(&self) -> Result<(), String>;
    /// `/readyz`: Err while the process cannot serve yet.
    fn ready(&self) -> Result<(), String>;
}

/// The answer to a probe: 200 `ok`, or 503 with the reason, one line of
/// plain text.
pub fn answer(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// The probe at `path` (`/healthz`, `/livez` as its alias, `/readyz`), or
/// None for any other path.
pub fn route(path: &str, probes: &impl Probes) -> Option<(StatusCode, String)> {
    match path {
        "/healthz" | "/livez" => Some(answer(probes.live())),
        "/readyz" => Some(answer(probes.ready())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<(), String>, Result<(), String>);

    impl Probes for Fixed {
        fn live(&self) -> Result<(), String> {
            self.0.clone()
        }
        fn ready(&self) -> Result<(), String> {
            self.1.clone()
        }
    }

    #[test]
    fn probes_answer_ok_or_503_with_the_reason() {
        let p = Fixed(Ok(()), Err("caches not yet synced".into()));
        assert_eq!(route("/healthz", &p), Some((StatusCode::OK, "ok\n".into())));
        assert_eq!(route("/livez", &p), Some((StatusCode::OK, "ok\n".into())));
        assert_eq!(
            route("/readyz", &p),
            Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "caches not yet synced\n".into()
            ))
        );
        assert_eq!(route("/metrics", &p), None);
    }
}
