//! The signals that stop both binaries.

use std::io;

use tokio::signal::unix::{SignalKind, signal};

/// Resolves at the first SIGTERM (Kubernetes stopping the pod) or SIGINT
/// (Ctrl-C), with the signal's name. Both handlers are installed when the
/// future is first polled; an error means one could not be.
pub async fn shutdown_signal() -> io::Result<&'static str> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_resolves_the_future() {
        let waiting = tokio::spawn(shutdown_signal());
        // Let the task install its handlers before the signal is raised.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(status.success());
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the future resolved within 5 s")
            .unwrap()
            .unwrap();
        assert_eq!(got, "SIGTERM");
    }
}
