//! `/metrics` (our extension): Prometheus text format of instance and master state.

use std::fmt::Write;

use super::context::Api;
use crate::master::http::message::{Request, Response};
use crate::master::instances::model::{gauge, Status};

/// GET only.
pub fn handle(api: &Api, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::error(405, "Method not allowed");
    }
    Response::typed(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        render(api).into_bytes(),
    )
}

/// A per-instance gauge: name, help text, reader.
type Gauge = (
    &'static str,
    &'static str,
    fn(&crate::master::instances::model::Instance) -> i32,
);

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(api: &Api) -> String {
    let m = &api.m;
    let mut out = String::new();
    let all = m.instances.borrow();
    let insts: Vec<_> = all
        .iter()
        .filter(|i| !i.is_key() && !i.run.deleted)
        .collect();
    let _ = writeln!(out, "# HELP nodepass_master_uptime_seconds Seconds since the master started.\n# TYPE nodepass_master_uptime_seconds gauge");
    let _ = writeln!(
        out,
        "nodepass_master_uptime_seconds {}",
        api.started.elapsed().as_secs()
    );
    let _ = writeln!(
        out,
        "# HELP nodepass_instances Instances by status.\n# TYPE nodepass_instances gauge"
    );
    for st in [Status::Running, Status::Stopped, Status::Error] {
        let n = insts.iter().filter(|i| i.status == st).count();
        let _ = writeln!(out, "nodepass_instances{{status=\"{}\"}} {n}", st.as_str());
    }
    let _ = writeln!(out, "# HELP nodepass_sse_subscribers Open event streams.\n# TYPE nodepass_sse_subscribers gauge");
    let _ = writeln!(out, "nodepass_sse_subscribers {}", m.hub.count());
    let counters = [("tcp_rx", 0), ("tcp_tx", 1), ("udp_rx", 2), ("udp_tx", 3)];
    for (name, idx) in counters {
        let _ = writeln!(out, "# HELP nodepass_instance_{name}_bytes_total Cumulative bytes.\n# TYPE nodepass_instance_{name}_bytes_total counter");
        for i in &insts {
            let _ = writeln!(
                out,
                "nodepass_instance_{name}_bytes_total{{id=\"{}\",alias=\"{}\",type=\"{}\"}} {}",
                i.id,
                esc(&i.alias),
                i.kind,
                i.traffic[idx]
            );
        }
    }
    let gauges: [Gauge; 4] = [
        ("tcp_connections", "Active TCP sessions.", |i| {
            gauge(i.reported.tcps)
        }),
        ("udp_connections", "Active UDP sessions.", |i| {
            gauge(i.reported.udps)
        }),
        ("pool_idle", "Idle pool connections.", |i| {
            gauge(i.reported.pool)
        }),
        ("ping_ms", "Last tunnel ping in milliseconds.", |i| {
            gauge(i.reported.ping_ms)
        }),
    ];
    for (name, help, get) in gauges {
        let _ = writeln!(
            out,
            "# HELP nodepass_instance_{name} {help}\n# TYPE nodepass_instance_{name} gauge"
        );
        for i in &insts {
            let _ = writeln!(
                out,
                "nodepass_instance_{name}{{id=\"{}\",alias=\"{}\",type=\"{}\"}} {}",
                i.id,
                esc(&i.alias),
                i.kind,
                get(i)
            );
        }
    }
    let _ = writeln!(out, "# HELP nodepass_instance_up 1 when the instance is running.\n# TYPE nodepass_instance_up gauge");
    for i in &insts {
        let up = u8::from(i.status == Status::Running);
        let _ = writeln!(
            out,
            "nodepass_instance_up{{id=\"{}\",alias=\"{}\",type=\"{}\"}} {up}",
            i.id,
            esc(&i.alias),
            i.kind
        );
    }
    out
}
