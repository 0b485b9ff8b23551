//! Startup, leader election and shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context as _, bail};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::watch;
use tracing::{error, info};

use crate::cli::{Cli, default_identity};
use crate::controller::{Context, rs_controller, vs_controller};
use crate::http::{self, Health};
use crate::leader::{Ended, LeaderElector, LeaseTiming};
use crate::metrics::Metrics;
use crate::stores;

/// Sends `true` on `tx` at SIGTERM or SIGINT.
async fn signals(tx: watch::Sender<bool>) {
    match lvs_runtime::signal::shutdown_signal().await {
        Ok(signal) => info!(signal, "shutting down"),
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM and SIGINT");
            return;
        }
    }
    let _ = tx.send(true);
}

/// Runs until SIGTERM/SIGINT (Ok) or until leadership is lost (Err, so the
/// process exits non-zero and its Deployment restarts it as a follower).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = lvs_runtime::kube::client(cli.kubeconfig.as_deref()).await?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = cli.identity.clone().unwrap_or_else(default_identity);
    info!(%identity, %namespace, leader_elect = cli.leader_elect, "starting lvs-operator");

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(signals(shutdown_tx));

    let listener = http::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));

    let (stores, feeds, reflectors) = stores::start_with(
        &client,
        &health,
        stores::Unreadable::new(metrics.unreadable.clone()),
    );
    let mut sd = shutdown.clone();
    tokio::select! {
        synced = stores.wait_until_ready() => synced.context("a reflector stopped before its first list")?,
        () = crate::stopped(&mut sd) => return Ok(()),
    }
    health.stores_synced.store(true, Ordering::Relaxed);
    info!(
        virtualservices = stores.vs.len(),
        realservers = stores.rs.len(),
        nodes = stores.nodes.len(),
        lvsnodes = stores.lvsnodes.len(),
        services = stores.services.len(),
        endpointslices = stores.slices.len(),
        "caches synced"
    );

    let mut elector = cli.leader_elect.then(|| {
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &namespace),
            &cli.lease_name,
            &namespace,
            &identity,
            LeaseTiming::default(),
        )
        .with_health(health.clone())
    });
    if let Some(e) = elector.as_mut() {
        info!(lease = %cli.lease_name, %namespace, "waiting for leadership");
        if !e.acquire(&mut shutdown.clone()).await {
            return Ok(());
        }
    }
    health.leading.store(true, Ordering::Relaxed);
    metrics.leader.set(1);

    let ctx = Arc::new(Context::new(client, stores, metrics.clone(), &identity));
    let vs = tokio::spawn(vs_controller(ctx.clone(), &feeds, shutdown.clone()));
    let rs = tokio::spawn(rs_controller(ctx.clone(), &feeds, shutdown.clone()));
    let pools = tokio::spawn(crate::pools::pool_controller(
        ctx.clone(),
        &feeds,
        shutdown.clone(),
    ));
    let services = tokio::spawn(crate::services::service_controller(
        ctx,
        &feeds,
        shutdown.clone(),
    ));
    health.controllers_running.store(true, Ordering::Relaxed);
    info!("controllers running");
    let controllers = async {
        let _ = vs.await;
        let _ = rs.await;
        let _ = pools.await;
        let _ = services.await;
    };

    let result = match elector {
        None => {
            controllers.await;
            Ok(())
        }
        Some(e) => {
            // The lease is released only after the controllers stopped writing.
            let (stop_tx, mut stop) = watch::channel(false);
            let mut hold = tokio::spawn(async move { e.hold(&mut stop).await });
            tokio::select! {
                () = controllers => {
                    let _ = stop_tx.send(true);
                    let _ = hold.await;
                    Ok(())
                }
                ended = &mut hold => match ended {
                    Ok(Ended::Lost(why)) => {
                        metrics.leader.set(0);
                        health.leading.store(false, Ordering::Relaxed);
                        bail!("lost leadership: {why}; exiting so that a restart rejoins as follower")
                    }
                    Ok(Ended::Shutdown) => Ok(()),
                    Err(e) => bail!("the lease renewal task failed: {e}"),
                },
            }
        }
    };
    for r in reflectors {
        r.abort();
    }
    info!("stopped");
    result
}
