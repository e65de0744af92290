//! The master's runtime, wiring the three rooms: bind, load the state (`instances`), serve
//! the API (`api`) with the HTTP server (`http`), run the periodic tasks, then shut down in
//! Go's order (SSE `shutdown`, stop instances, save, close HTTP).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::{ListenerOpts, TcpListener};

use super::api::context::Api;
use super::http::server;
use super::instances::atomic_file::Writer;
use super::instances::core::{random_hex, Master};
use super::instances::hub::Hub;
use super::instances::model::Instance;
use super::instances::urls::{self, UrlDefaults};
use super::instances::watch::ChildEvent;
use super::instances::{saver, state, supervisor};
use super::options::{Control, MasterError, MasterOptions};
use super::tls;
use crate::config::Config;
use crate::wake::{queue, QueueRx, QueueTx};

/// How often the stop flags of a master started by [`super::start`] are looked at.
const TICK: Duration = Duration::from_millis(50);
/// The same for the program's master, which a signal wakes at once.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Resolve once `ctl` says stop, looking every `tick`.
async fn poll_stop(ctl: &Control, tick: Duration) {
    while !ctl.should_stop() {
        monoio::time::sleep(tick).await;
    }
}
/// Child events queued for the runtime at most (lines are at most 8 KiB): when it is full,
/// the watcher thread holds lines back and the children wait on their pipes.
const CHILD_QUEUE: usize = 1024;
/// Child events handled in one go before the API's tasks get their turn.
const CHILD_BATCH: usize = 128;

/// Build the runtime on this thread and serve until `ctl` says stop. `ready` learns the
/// bound address (or why start failed) exactly once.
pub fn serve(
    cfg: Config,
    opts: MasterOptions,
    ctl: Control,
    ready: impl FnOnce(Result<SocketAddr, MasterError>),
) {
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => return ready(Err(MasterError::Runtime(e))),
    };
    crate::runtime::note_fusion_runtime();
    // A state file that cannot be used stops the start before anything is bound.
    let state_file = opts.state_dir.join(state::FILE_NAME);
    let saved = match state::load(&state_file) {
        Ok(saved) => saved,
        Err(e) => return ready(Err(MasterError::State(e))),
    };
    rt.block_on(async move {
        let listen = cfg.tunnel.to_addr_string();
        let bind_addr = if cfg.tunnel.host.is_empty() {
            format!("0.0.0.0:{}", cfg.tunnel.port)
        } else {
            listen.clone()
        };
        let opts_l = ListenerOpts::new().reuse_port(false);
        let listener = match TcpListener::bind_with_config(bind_addr.as_str(), &opts_l) {
            Ok(l) => l,
            Err(e) => return ready(Err(MasterError::Bind(bind_addr, e))),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return ready(Err(MasterError::Bind(bind_addr, e))),
        };
        let (tx, rx) = queue::<ChildEvent>(CHILD_QUEUE);
        let limits = opts.http.clone();
        let api = Rc::new(build_api(&cfg, opts, saved, state_file, tx));
        let m = api.m.clone();
        let acceptor = tls_acceptor(&cfg);
        log::info!("Master started: {}{}", addr, api.base);
        ready(Ok(addr));
        monoio::spawn(server::run(listener, acceptor, limits, api));
        spawn_tasks(&m, rx);
        autostart(&m);
        if ctl.follow_signals {
            // The program's master: only a signal stops it, so it sleeps until one comes.
            monoio::select! {
                _ = crate::shutdown::wait() => {}
                _ = poll_stop(&ctl, IDLE_TICK) => {}
            }
        } else {
            poll_stop(&ctl, TICK).await;
        }
        if ctl.aborted() {
            for inst in m.instances.borrow().iter() {
                if let Some(child) = &inst.run.child {
                    child.kill();
                }
            }
            return;
        }
        shutdown(&m).await;
    });
}

fn build_api(
    cfg: &Config,
    opts: MasterOptions,
    saved: Option<state::Saved>,
    state_file: PathBuf,
    tx: QueueTx<ChildEvent>,
) -> Api {
    let defaults = UrlDefaults {
        log: opts.url_log.clone(),
        tls: cfg.params.tls.code().to_string(),
        crt: cfg.params.crt.clone(),
        key: cfg.params.key_file.clone(),
    };
    let (mid, alias, mut instances) = match saved {
        Some(s) => (s.mid, s.alias, s.instances),
        None => (String::new(), String::new(), Vec::new()),
    };
    let mid = if mid.is_empty() { random_hex(8) } else { mid };
    if !instances.iter().any(Instance::is_key) {
        let key = random_hex(16);
        log::info!("API Key created: {key}");
        instances.insert(0, Instance::key(key, mid.clone()));
    } else {
        log::info!("API Key loaded from {}", state_file.display());
    }
    for inst in instances.iter_mut() {
        if inst.is_key() {
            inst.config = mid.clone();
            inst.alias = alias.clone();
        } else if inst.config.is_empty() {
            inst.config = urls::config_url(&inst.url, &inst.kind, &defaults);
        }
    }
    let prefix = if cfg.master_prefix.is_empty() || cfg.master_prefix == "/" {
        "/api".to_string()
    } else {
        cfg.master_prefix.trim_end_matches('/').to_string()
    };
    let m = Master {
        exe: opts.exe,
        counter_save_interval: opts.counter_save_interval,
        env: cfg.env.clone(),
        defaults,
        mid,
        alias: RefCell::new(alias),
        instances: RefCell::new(instances),
        hub: Hub::default(),
        dirty: Cell::new(true),
        save_wanted: Default::default(),
        counters_dirty: Cell::new(false),
        children: tx,
        closing: Cell::new(false),
        backup_file: Arc::new(Writer::new(state::backup_path(&state_file))),
        state_file: Arc::new(Writer::new(state_file)),
    };
    Api {
        m: Rc::new(m),
        base: format!("{prefix}/v1"),
        name: cfg.tunnel.host.clone(),
        started: Instant::now(),
        validate_urls: opts.validate_urls,
        tcping_busy: Cell::new(0),
    }
}

fn tls_acceptor(cfg: &Config) -> Option<monoio_rustls::TlsAcceptor> {
    tls::acceptor(cfg).unwrap_or_else(|e| {
        log::error!("TLS setup failed, serving plain HTTP: {e}");
        None
    })
}

fn spawn_tasks(m: &Rc<Master>, rx: QueueRx<ChildEvent>) {
    let mm = m.clone();
    monoio::spawn(async move {
        // The master holds a sender for as long as it runs.
        while let Some(ev) = rx.recv().await {
            supervisor::on_child_event(&mm, ev);
            let mut handled = 1;
            while handled < CHILD_BATCH {
                let Some(ev) = rx.try_recv() else { break };
                supervisor::on_child_event(&mm, ev);
                handled += 1;
            }
            // A flooding child must not starve the API. A sleep, not a yield: monoio 0.2.4
            // polls a self-woken task again first (MONOIO.md §4.5).
            if handled == CHILD_BATCH {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mm = m.clone();
    monoio::spawn(async move { saver::run(&mm).await });
    let mm = m.clone();
    monoio::spawn(async move {
        let mut last_reload = Instant::now();
        loop {
            monoio::time::sleep(mm.report_interval()).await;
            supervisor::check_silence(&mm);
            if last_reload.elapsed() >= mm.env.reload_interval {
                last_reload = Instant::now();
                saver::backup(&mm).await;
                supervisor::restart_errored(&mm).await;
            }
        }
    });
}

/// Instances with `restart: true` come back up, 100 ms apart, counters kept.
fn autostart(m: &Rc<Master>) {
    let ids: Vec<String> = m
        .instances
        .borrow()
        .iter()
        .filter(|i| i.restart && !i.is_key())
        .map(|i| i.id.clone())
        .collect();
    let mm = m.clone();
    monoio::spawn(async move {
        for id in ids {
            log::info!("Auto-starting instance [{id}]");
            supervisor::start(&mm, &id);
            monoio::time::sleep(supervisor::RESTART_PAUSE).await;
        }
    });
}

async fn shutdown(m: &Rc<Master>) {
    m.hub.shutdown_all();
    m.closing.set(true);
    let ids: Vec<String> = m
        .instances
        .borrow()
        .iter()
        .filter(|i| i.run.child.is_some())
        .map(|i| i.id.clone())
        .collect();
    let pending = Rc::new(Cell::new(ids.len()));
    for id in ids {
        let (mm, p) = (m.clone(), pending.clone());
        monoio::spawn(async move {
            // Keep the saved status meaningful: a stop at shutdown is not the user's stop.
            supervisor::stop(&mm, &id).await;
            p.set(p.get() - 1);
        });
    }
    while pending.get() > 0 {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    saver::final_save(m);
    log::info!("Master shutdown complete");
}
