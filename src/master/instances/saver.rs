//! Saving the master state: the background saver, the backup and the final save.
//!
//! Structure changes are written at once, counter-only changes every
//! `counter_save_interval`. The backup is written after the first good save and then every
//! `NP_RELOAD_INTERVAL`, so a backup exists from the start. Every write goes through the
//! file's [`Writer`], so the saver, the backup and the final save can never clash or let
//! an older content win. A failing save names the file and retries with an exponential
//! back-off (0.5 s doubling up to 30 s) until the file is writable again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::atomic_file::Writer;
use super::core::Master;
use super::off_thread::off_thread;
use super::state;

/// How long the saver lets a burst of changes gather before it writes them.
const TICK: Duration = Duration::from_millis(50);
/// The longest the saver sleeps with nothing to do (counter changes do not wake it).
const IDLE: Duration = Duration::from_secs(1);

/// First retry delay after a failed save.
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// Longest retry delay while saves keep failing.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Delay before the next attempt after `failures` failed saves in a row (≥ 1).
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// Encode the state now (ticket taken with it) and write it on a helper thread.
/// `Ok(false)`: a newer content was already written.
async fn write(m: &Master, writer: &Arc<Writer>) -> std::io::Result<bool> {
    let bytes = state::encode(&m.mid, &m.alias.borrow(), &m.instances.borrow());
    let ticket = writer.ticket();
    let w = writer.clone();
    off_thread(move || w.write(ticket, &bytes))
        .await
        .unwrap_or_else(|| Err(std::io::Error::other("the writer thread failed")))
}

/// Write the backup copy.
pub async fn backup(m: &Master) {
    let shown = m.backup_file.path().display().to_string();
    match write(m, &m.backup_file).await {
        Ok(_) => log::info!("State backup saved: {shown}"),
        Err(e) => log::error!("performPeriodicBackup: cannot write {shown}: {e}"),
    }
}

/// The background saver; runs for the master's life.
pub async fn run(m: &Master) {
    let mut last_counters = Instant::now();
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    let mut backed_up = false;
    loop {
        // Sleep until a change wants saving, counters fall due or a retry is due; then let
        // the burst gather for a tick.
        let due = match retry_at {
            Some(t) => t,
            None if m.counters_dirty.get() => last_counters + m.counter_save_interval,
            None => Instant::now() + IDLE,
        };
        let nap = due.saturating_duration_since(Instant::now()).min(IDLE);
        if !m.save_wanted.is_raised() {
            monoio::select! {
                _ = m.save_wanted.wait() => {}
                _ = monoio::time::sleep(nap) => {}
            }
        }
        m.save_wanted.lower();
        monoio::time::sleep(TICK).await;
        if retry_at.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let counters_due =
            m.counters_dirty.get() && last_counters.elapsed() >= m.counter_save_interval;
        if !m.dirty.get() && !counters_due && retry_at.is_none() {
            continue;
        }
        m.dirty.set(false);
        m.counters_dirty.set(false);
        last_counters = Instant::now();
        let shown = m.state_file.path().display().to_string();
        match write(m, &m.state_file).await {
            Ok(_) => {
                if failures > 0 {
                    log::info!("saveState: {shown} written again after {failures} failed saves");
                }
                failures = 0;
                retry_at = None;
                if !backed_up {
                    backed_up = true;
                    backup(m).await;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                log::error!("saveState: cannot write {shown}: {e}; retrying in {delay:?}");
                retry_at = Some(Instant::now() + delay);
            }
        }
    }
}

/// The last save at shutdown, on the runtime thread (nothing else runs any more); it wins
/// over any background save still in flight.
pub fn final_save(m: &Master) {
    let bytes = state::encode(&m.mid, &m.alias.borrow(), &m.instances.borrow());
    let shown = m.state_file.path().display().to_string();
    match m.state_file.write(m.state_file.ticket(), &bytes) {
        Ok(_) => log::info!("Instances saved: {shown}"),
        Err(e) => log::error!("shutdown: cannot write {shown}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_saves_back_off_exponentially_up_to_a_cap() {
        let secs: Vec<f64> = (1..=9).map(|n| retry_delay(n).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
