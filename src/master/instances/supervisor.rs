//! Instance life cycle: start, stop (SIGTERM, then SIGKILL after `NP_SHUTDOWN_TIMEOUT`),
//! restart, child output handling, the silence monitor and the periodic error restart.
//!
//! Status rules (Go v1.14): `running` as soon as the child is spawned; a "Server error:" /
//! "Client error:" line or 3 report intervals without a CHECK_POINT → `error`; the next
//! CHECK_POINT → `running`; a child exiting on its own → `stopped` (code 0) or `error`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::core::Master;
use super::model::Status;
use super::output;
use super::process;
use super::watch::ChildEvent;
use crate::stats::CheckPoint;

/// Pause between the stop and the start of a restart (Go's `baseDuration`).
pub const RESTART_PAUSE: Duration = Duration::from_millis(100);

/// How often a stop looks whether the child is gone.
const STOP_POLL: Duration = Duration::from_millis(10);

/// Spawn the instance's child if it is stopped (or in error without a live child).
pub fn start(m: &Rc<Master>, id: &str) {
    if m.closing.get() {
        return;
    }
    let exe = m.exe.clone();
    let events = m.children.clone();
    let started = m.with(id, |inst| {
        if inst.is_key() || inst.run.deleted || inst.run.child.is_some() {
            return None;
        }
        if inst.status == Status::Running {
            return None;
        }
        inst.begin_child();
        inst.run.generation += 1;
        inst.run.last_checkpoint = None;
        let shown = crate::config::masked_url(&inst.url);
        log::info!("Instance starting: {shown} [{}]", inst.id);
        match process::spawn(&exe, &inst.url, &inst.id, inst.run.generation, events) {
            Ok(child) => {
                inst.run.child = Some(child);
                inst.status = Status::Running;
            }
            Err(e) => {
                log::error!("startInstance: instance error: {e} [{}]", inst.id);
                inst.status = Status::Error;
            }
        }
        Some(())
    });
    if started.flatten().is_some() {
        m.mark_dirty();
        m.emit("update", id);
    }
}

/// Stop the instance: SIGTERM, wait up to `NP_SHUTDOWN_TIMEOUT`, then SIGKILL.
pub async fn stop(m: &Rc<Master>, id: &str) {
    let child = m
        .with(id, |inst| {
            if inst.is_key() {
                return None;
            }
            inst.run.stopping = true;
            inst.run.child.clone()
        })
        .flatten();
    let Some(child) = child else {
        // No child: just mark it stopped.
        let changed = m.with(id, |inst| {
            inst.run.stopping = false;
            let was = inst.status;
            if !inst.is_key() {
                inst.status = Status::Stopped;
                inst.clear_gauges();
            }
            was != Status::Stopped && !inst.is_key()
        });
        if changed == Some(true) {
            m.mark_dirty();
            m.emit("update", id);
        }
        return;
    };
    child.terminate();
    let deadline = Instant::now() + m.env.shutdown_timeout;
    let mut forced = false;
    while child_alive(m, id) {
        if !forced && Instant::now() >= deadline {
            child.kill();
            forced = true;
        }
        monoio::time::sleep(STOP_POLL).await;
    }
    if forced {
        log::warn!("Instance force killed [{id}]");
    } else {
        log::info!("Instance stopped [{id}]");
    }
    m.with(id, |inst| {
        inst.run.stopping = false;
        inst.status = Status::Stopped;
        inst.clear_gauges();
    });
    m.mark_dirty();
    m.emit("update", id);
}

fn child_alive(m: &Master, id: &str) -> bool {
    m.with(id, |inst| inst.run.child.is_some()).unwrap_or(false)
}

/// Stop, pause, start.
pub async fn restart(m: &Rc<Master>, id: &str) {
    stop(m, id).await;
    monoio::time::sleep(RESTART_PAUSE).await;
    start(m, id);
}

/// Handle one report from a child.
pub fn on_child_event(m: &Rc<Master>, ev: ChildEvent) {
    match ev {
        ChildEvent::Line {
            id,
            generation,
            line,
        } => on_line(m, &id, generation, &line),
        ChildEvent::Exited {
            id,
            generation,
            success,
        } => on_exit(m, &id, generation, success),
    }
}

fn on_line(m: &Rc<Master>, id: &str, generation: u64, line: &str) {
    enum Outcome {
        Update,
        Log { error: bool },
    }
    let outcome = m.with(id, |inst| {
        if inst.run.generation != generation || inst.run.deleted {
            return None;
        }
        if let Ok(cp) = line.parse::<CheckPoint>() {
            inst.apply_checkpoint(&cp);
            inst.run.last_checkpoint = Some(Instant::now());
            if inst.status == Status::Error && inst.run.child.is_some() && !inst.run.stopping {
                inst.status = Status::Running;
            }
            return Some(Outcome::Update);
        }
        let error = output::is_error_line(line) && inst.status == Status::Running;
        if error {
            inst.status = Status::Error;
        }
        Some(Outcome::Log { error })
    });
    match outcome.flatten() {
        Some(Outcome::Update) => {
            m.counters_dirty.set(true);
            m.emit("update", id);
        }
        Some(Outcome::Log { error }) => {
            if let Some(v) = m.json_of(id) {
                m.hub
                    .publish("log", Some(v), &output::with_level_colour(line));
            }
            if error {
                m.mark_dirty();
                m.emit("update", id);
            }
        }
        None => {}
    }
}

fn on_exit(m: &Rc<Master>, id: &str, generation: u64, success: bool) {
    let changed = m.with(id, |inst| {
        if inst.run.generation != generation {
            return false;
        }
        inst.run.child = None;
        if inst.run.stopping || inst.run.deleted {
            return false;
        }
        if inst.status == Status::Running {
            inst.status = if success {
                Status::Stopped
            } else {
                Status::Error
            };
            if !success {
                log::error!(
                    "monitorInstance: instance exited with an error [{}]",
                    inst.id
                );
            }
        }
        inst.clear_gauges();
        true
    });
    if changed == Some(true) {
        m.mark_dirty();
        m.emit("update", id);
    }
}

/// One silence check: running instances quiet for 3 report intervals become `error`.
pub fn check_silence(m: &Rc<Master>) {
    let limit = m.report_interval() * 3;
    let mut went_quiet = Vec::new();
    for inst in m.instances.borrow_mut().iter_mut() {
        let quiet = inst
            .run
            .last_checkpoint
            .is_some_and(|t| t.elapsed() > limit);
        if inst.status == Status::Running && quiet && !inst.run.stopping {
            inst.status = Status::Error;
            went_quiet.push(inst.id.clone());
        }
    }
    for id in went_quiet {
        m.mark_dirty();
        m.emit("update", &id);
    }
}

/// Every `NP_RELOAD_INTERVAL`, Go restarts instances stuck in `error`.
pub async fn restart_errored(m: &Rc<Master>) {
    let ids: Vec<String> = m
        .instances
        .borrow()
        .iter()
        .filter(|i| i.status == Status::Error && !i.is_key() && !i.run.deleted)
        .map(|i| i.id.clone())
        .collect();
    for id in ids {
        restart(m, &id).await;
    }
}
