//! `/info`: master and host facts from /proc with Go's rules; POST sets the master alias.

use std::time::Duration;

use serde_json::{json, Value};

use super::context::Api;
use crate::master::http::message::{Request, Response};
use crate::master::instances::model::{KEY_ID, MAX_VALUE_LEN};

/// GET answers the info; POST `{"alias": …}` sets the alias first.
pub async fn handle(api: &Api, req: &Request) -> Response {
    let m = &api.m;
    match req.method.as_str() {
        "GET" => Response::json(200, &info(api).await),
        "POST" => {
            let alias = match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Object(o)) => match o.get("alias") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => return Response::error(400, "Invalid request body"),
                },
                _ => return Response::error(400, "Invalid request body"),
            };
            if alias.len() > MAX_VALUE_LEN {
                return Response::error(
                    400,
                    &format!("Master alias exceeds maximum length {MAX_VALUE_LEN}"),
                );
            }
            *m.alias.borrow_mut() = alias.clone();
            m.with(KEY_ID, |i| i.alias = alias);
            m.mark_dirty();
            Response::json(200, &info(api).await)
        }
        _ => Response::error(405, "Method not allowed"),
    }
}

async fn info(api: &Api) -> Value {
    let m = &api.m;
    let sys = if cfg!(target_os = "linux") {
        linux().await
    } else {
        Sys {
            cpu: -1,
            ..Sys::default()
        }
    };
    json!({
        "mid": m.mid, "alias": *m.alias.borrow(), "os": std::env::consts::OS, "arch": go_arch(),
        "cpu": sys.cpu, "mem_total": sys.mem_total, "mem_used": sys.mem_used,
        "swap_total": sys.swap_total, "swap_used": sys.swap_used,
        "netrx": sys.netrx, "nettx": sys.nettx, "diskr": sys.diskr, "diskw": sys.diskw, "sysup": sys.sysup,
        "ver": env!("CARGO_PKG_VERSION"), "name": api.name, "uptime": api.started.elapsed().as_secs(),
        "log": m.defaults.log, "tls": m.defaults.tls, "crt": m.defaults.crt, "key": m.defaults.key,
    })
}

/// Go's GOARCH names for the common targets.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[derive(Default)]
struct Sys {
    cpu: i64,
    mem_total: u64,
    mem_used: u64,
    swap_total: u64,
    swap_used: u64,
    netrx: u64,
    nettx: u64,
    diskr: u64,
    diskw: u64,
    sysup: u64,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `(idle, total)` jiffies of the `cpu ` line.
fn cpu_times(stat: &str) -> (u64, u64) {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let vals: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    (vals.get(3).copied().unwrap_or(0), vals.iter().sum())
}

async fn linux() -> Sys {
    let mut s = Sys {
        cpu: -1,
        ..Sys::default()
    };
    let (i1, t1) = cpu_times(&read("/proc/stat"));
    monoio::time::sleep(Duration::from_millis(100)).await;
    let (i2, t2) = cpu_times(&read("/proc/stat"));
    let (di, dt) = (i2.saturating_sub(i1), t2.saturating_sub(t1));
    if let Some(pct) = (dt.saturating_sub(di) * 100).checked_div(dt) {
        s.cpu = pct.min(100) as i64;
    }
    let (mt, ma, st, sf) = meminfo(&read("/proc/meminfo"));
    s.mem_total = mt;
    s.mem_used = mt.saturating_sub(ma);
    s.swap_total = st;
    s.swap_used = st.saturating_sub(sf);
    (s.netrx, s.nettx) = net_totals(&read("/proc/net/dev"));
    (s.diskr, s.diskw) = disk_totals(&read("/proc/diskstats"));
    s.sysup = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    s
}

fn meminfo(text: &str) -> (u64, u64, u64, u64) {
    let (mut mt, mut ma, mut st, mut sf) = (0, 0, 0, 0);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(val)) = (f.next(), f.next().and_then(|v| v.parse::<u64>().ok()))
        else {
            continue;
        };
        let val = val * 1024;
        match name {
            "MemTotal:" => mt = val,
            "MemAvailable:" => ma = val,
            "SwapTotal:" => st = val,
            "SwapFree:" => sf = val,
            _ => {}
        }
    }
    (mt, ma, st, sf)
}

fn net_totals(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let name = f[0].trim_end_matches(':');
        if ["lo", "veth", "docker", "podman", "br-", "virbr"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        rx += f[1].parse::<u64>().unwrap_or(0);
        tx += f[9].parse::<u64>().unwrap_or(0);
    }
    (rx, tx)
}

fn disk_totals(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let dev = f[2];
        let skip = dev.contains("loop")
            || dev.contains("ram")
            || dev.starts_with("dm-")
            || dev.starts_with("md")
            || dev.ends_with(|c: char| c.is_ascii_digit());
        if skip {
            continue;
        }
        r += f[5].parse::<u64>().unwrap_or(0) * 512;
        w += f[9].parse::<u64>().unwrap_or(0) * 512;
    }
    (r, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_interfaces_are_left_out_of_network_totals() {
        let text = "h1\nh2\n  lo: 5 0 0 0 0 0 0 0 5 0\n eth0: 100 0 0 0 0 0 0 0 200 0\nveth1: 7 0 0 0 0 0 0 0 7 0\n";
        assert_eq!(net_totals(text), (100, 200));
    }

    #[test]
    fn partitions_and_virtual_disks_are_left_out_of_disk_totals() {
        let text = "8 0 sda 1 0 10 0 1 0 20 0 0 0 0\n8 1 sda1 1 0 99 0 1 0 99 0 0 0 0\n7 0 loop0 1 0 99 0 1 0 99 0 0 0 0\n259 0 nvme0n1 1 0 1 0 1 0 1 0 0 0 0";
        assert_eq!(disk_totals(text), (10 * 512, 20 * 512));
    }

    #[test]
    fn cpu_times_sum_every_column_and_pick_idle() {
        assert_eq!(cpu_times("cpu  1 2 3 4 5\ncpu0 9"), (4, 15));
    }
}
