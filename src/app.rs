//! Wiring only: builds the parts, owns every long-lived task, reloads, shuts down.
//!
//! `App::start` binds both listeners (port 0 works: tests read the bound
//! addresses back), loads GeoIP and the mirrors, starts the state owner (which
//! starts probing) and serves. `run_until_signal` turns SIGHUP into a reload
//! and SIGTERM/SIGINT into a graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState, ReloadFn};
use crate::config::Config;
use crate::content::{Checker, CheckerSettings};
use crate::fds::{self, FdBudget, FdError};
use crate::geo::GeoDb;
use crate::health::ProbeClient;
use crate::http::{self, PublicHandler, ServeOptions};
use crate::metrics::Metrics;
use crate::origin::OriginIndexer;
use crate::proxy::Proxy;
use crate::registry;
use crate::select::Scheme;
use crate::state::{Loaded, State};

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Descriptors(#[from] FdError),
}

/// How to start, beyond the config itself.
#[derive(Default)]
pub struct StartOptions {
    /// The file to re-read on reload; without it reload re-installs the same config.
    pub config_path: Option<PathBuf>,
    /// A GeoIP database to use instead of the config's files (the demo embeds one).
    pub geo: Option<Arc<GeoDb>>,
}

/// A running mirrorgate.
pub struct App {
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    state: Arc<State>,
    metrics: Metrics,
    reload: ReloadFn,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    indexer: SharedIndexer,
}

/// The listen queue of both listeners.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds one listener and reads back its address (port 0 picks a free one).
async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind { what, addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    // Clients past the connection cap (or arriving while accept backs off
    // from EMFILE) wait in this queue rather than being refused; the kernel
    // caps it at net.core.somaxconn.
    let listener = socket.listen(LISTEN_BACKLOG).map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

/// Raises the soft open-file limit to the hard one, and returns how many
/// connections the public listener may serve at once: `limits.max_connections`,
/// or fewer (said loudly) when the limit cannot hold them beside the
/// descriptors kept for probes and upstreams (see [`crate::fds`]).
fn descriptor_budget(config: &Config) -> Result<usize, FdError> {
    let (limit, raised_from) = fds::raise_nofile();
    if let Some(was) = raised_from {
        tracing::info!(
            from = %fds::show(was),
            to = %fds::show(limit.soft),
            "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
        );
    }
    let budget = FdBudget::new(limit.soft, config);
    let max = budget.max_connections()?;
    if max < budget.wanted {
        tracing::warn!(
            open_file_limit = %fds::show(limit.soft),
            reserved = budget.reserve,
            per_connection = budget.per_connection,
            max_connections = budget.wanted,
            needed = budget.needed(),
            serving_at_most = max,
            "the open-file limit cannot hold limits.max_connections beside the descriptors kept \
             for probes and upstream connections: the public listener serves at most {max} \
             connections at once; raise the limit (ulimit -n, LimitNOFILE= in systemd) to {} \
             or lower limits.max_connections",
            budget.needed()
        );
    }
    Ok(max)
}

/// Opens GeoIP and builds the mirrors for a config: everything a snapshot needs.
pub async fn load_parts(
    config: Config,
    geo_override: Option<Arc<GeoDb>>,
) -> Result<Loaded, String> {
    let geo = match geo_override {
        Some(g) => g,
        None => {
            let (city, asn) = (config.geoip.city.clone(), config.geoip.asn.clone());
            let opened = tokio::task::spawn_blocking(move || {
                if city.is_empty() {
                    Ok(GeoDb::empty())
                } else {
                    GeoDb::open(&city, asn.as_ref())
                }
            })
            .await
            .map_err(|e| format!("geoip: loading was interrupted: {e}"))?;
            Arc::new(opened.map_err(|e| format!("geoip: {e}"))?)
        }
    };
    let (mirrors, notes) = registry::build_mirrors(&config, &geo).await;
    for n in &notes {
        tracing::info!("{n}");
    }
    Ok(Loaded {
        config: Arc::new(config),
        geo,
        mirrors,
    })
}

impl App {
    /// Binds, loads and starts serving.
    pub async fn start(config: Config, opts: StartOptions) -> Result<App, StartError> {
        let max_connections = descriptor_budget(&config)?;
        let (public, public_addr) = bind("listen", config.listen).await?;
        let (admin_l, admin_addr) = bind("admin_listen", config.admin_listen).await?;

        let metrics = Metrics::new();
        let mut serve_opts = ServeOptions::from(&config.limits);
        serve_opts.max_connections = max_connections;
        let admin_opts = admin::ServeOptions::from(&config);
        let config_od = config.origin.as_ref().map(|o| o.on_demand.clone());
        let config_proxy = config.proxy.clone();
        let config_roots = config.tls_roots.clone();
        let loaded = load_parts(config.clone(), opts.geo.clone())
            .await
            .map_err(StartError::Load)?;
        let client =
            ProbeClient::with_roots(loaded.config.health.timeout, &loaded.config.tls_roots)
                .map_err(|e| StartError::Load(format!("health checks: {e}")))?;
        let state = State::start(loaded, metrics.clone(), client);
        let indexer = Arc::new(std::sync::Mutex::new(config.origin.as_ref().and_then(
            |o| OriginIndexer::start(o, &config.tls_roots, state.clone(), metrics.clone()),
        )));
        let reload = make_reload(
            state.clone(),
            metrics.clone(),
            config,
            opts,
            indexer.clone(),
        );

        let (shutdown, shutdown_rx) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // The on-demand checker and its cache outlive reloads; its settings
        // are those of the config the process started with.
        let mut settings = CheckerSettings::default();
        if let Some(od) = config_od {
            settings.timeout = od.timeout;
            settings.positive_ttl = od.positive_ttl;
            settings.negative_ttl = od.negative_ttl;
        }
        settings.roots = config_roots.clone();
        let checker = Checker::new(settings)
            .map_err(|e| StartError::Load(format!("on-demand checks: {e}")))?;
        // Like the checker, the proxy's connection pool outlives reloads.
        let proxy = Proxy::new(
            &config_proxy,
            &config_roots,
            metrics.clone(),
            &state,
            &[public_addr, admin_addr],
        )
        .map_err(|e| StartError::Load(format!("proxy: {e}")))?;
        let handler = PublicHandler::new(
            state.clone(),
            metrics.clone(),
            checker.clone(),
            proxy,
            Scheme::Http,
        );
        let tasks = vec![
            tokio::spawn(http::serve(
                public,
                handler,
                serve_opts,
                wait(shutdown_rx.clone()),
            )),
            tokio::spawn(admin::serve(
                admin_l,
                AdminState {
                    state: state.clone(),
                    metrics: metrics.clone(),
                    reload: reload.clone(),
                    checker,
                },
                admin_opts,
                wait(shutdown_rx),
            )),
        ];
        tracing::info!(%public_addr, %admin_addr, "mirrorgate serving");
        Ok(App {
            public_addr,
            admin_addr,
            state,
            metrics,
            reload,
            shutdown,
            tasks,
            indexer,
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Re-reads config and GeoIP. A config that fails validation, or GeoIP
    /// that fails to open, is refused and the old state keeps serving.
    pub async fn reload(&self) -> Result<u64, String> {
        (self.reload)().await
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let indexer = self.indexer.lock().ok().and_then(|mut i| i.take());
        if let Some(ix) = indexer {
            ix.stop().await;
        }
    }

    /// Serves until SIGTERM or SIGINT (then drains), reloading on SIGHUP.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        // systemd's Type=notify protocol, when NOTIFY_SOCKET is set.
        let sd = crate::notify::SdNotify::start(&self.state);
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    sd.reloading();
                    // The outcome is logged by the reload itself.
                    let result = self.reload().await;
                    sd.reloaded(&self.state, &result);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        sd.stopping();
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The origin indexer, shared with reloads (which restart or re-trigger it).
type SharedIndexer = Arc<std::sync::Mutex<Option<OriginIndexer>>>;

fn make_reload(
    state: Arc<State>,
    metrics: Metrics,
    initial: Config,
    opts: StartOptions,
    indexer: SharedIndexer,
) -> ReloadFn {
    let initial = Arc::new(initial);
    let opts = Arc::new(opts);
    // Reloads are serialised: two at once could install in either order.
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    Arc::new(move || {
        let (state, metrics, initial, opts, lock, indexer) = (
            state.clone(),
            metrics.clone(),
            initial.clone(),
            opts.clone(),
            lock.clone(),
            indexer.clone(),
        );
        Box::pin(async move {
            let _guard = lock.lock().await;
            let result = reload_once(&state, &initial, &opts).await;
            if result.is_ok() {
                let snap = state.load_full();
                let origin = snap.config.origin.as_ref();
                if let Ok(mut current) = indexer.lock() {
                    match current.as_ref() {
                        // Same source: walk or fetch it again now.
                        Some(ix) if ix.follows(origin) => ix.rescan(),
                        _ => {
                            *current = origin.and_then(|o| {
                                OriginIndexer::start(
                                    o,
                                    &snap.config.tls_roots,
                                    state.clone(),
                                    metrics.clone(),
                                )
                            });
                        }
                    }
                }
            }
            metrics.reload(result.is_ok());
            match &result {
                Ok(generation) => tracing::info!(generation, "config reloaded"),
                Err(e) => tracing::error!("reload refused, the old config keeps serving: {e}"),
            }
            result
        })
    })
}

async fn reload_once(state: &State, initial: &Config, opts: &StartOptions) -> Result<u64, String> {
    let config = match &opts.config_path {
        Some(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Config::load(&path))
                .await
                .map_err(|e| format!("reload interrupted: {e}"))?
                .map_err(|e| e.to_string())?
        }
        None => initial.clone(),
    };
    let old = state.load_full();
    if config.listen != old.config.listen || config.admin_listen != old.config.admin_listen {
        tracing::warn!("listen and admin_listen changes take effect at the next restart");
    }
    // The proxy's connection pools are built once, at start.
    let (new_p, old_p) = (&config.proxy, &old.config.proxy);
    if new_p.connect_timeout != old_p.connect_timeout
        || new_p.idle_connections != old_p.idle_connections
        || new_p.idle_connection_timeout != old_p.idle_connection_timeout
    {
        tracing::warn!(
            "proxy.connect_timeout, proxy.idle_connections and proxy.idle_connection_timeout \
             changes take effect at the next restart"
        );
    }
    let loaded = load_parts(config, opts.geo.clone()).await?;
    state
        .install(loaded)
        .await
        .ok_or_else(|| "the state owner has stopped".to_string())
}
