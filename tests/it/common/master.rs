//! Fixtures for the master tests: a master on 127.0.0.1:0 in a temp state dir, a fake
//! instance program (shell script), a tiny blocking HTTP/1.1 client and an SSE reader.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::isolation::{self, Room};
pub use super::{poll, TempDir};

use nodepass::config::{
    BlockSet, Config, Env, HostPort, LogLevel, Params, ProxyProtocol, RunMode, Scheme, TlsMode,
};
use nodepass::master::{self, MasterHandle, MasterOptions};
use serde_json::Value;

/// A fake instance: prints NodePass-format lines and CHECK_POINTs every 0.2 s with
/// growing counters. URL words switch behaviours: `fail` (error line, then exit 3),
/// `errline` (one "Client error:" line, then keeps reporting), `stubborn` (ignores SIGTERM),
/// `quiet` (no CHECK_POINT at all), `once` (one CHECK_POINT, then silence), `flood`
/// (CHECK_POINTs as fast as it can), `printlines` (`out 1..200` on stdout and `err 1..200`
/// on stderr, then exit 0).
pub const FAKE_INSTANCE: &str = r#"#!/bin/sh
case "$1" in *stubborn*) trap '' TERM ;; *) trap 'echo "2026-01-02 00:00:00.000  INFO  Shutdown"; exit 0' TERM ;; esac
echo "2026-01-02 00:00:00.000  INFO  Client started: $1"
case "$1" in *flood*) exec yes "2026-01-02 00:00:00.000  EVENT  CHECK_POINT|MODE=1|PING=3ms|POOL=0|TCPS=1|UDPS=0|TCPRX=1|TCPTX=1|UDPRX=0|UDPTX=0" ;; esac
case "$1" in *printlines*) i=1; while [ $i -le 200 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; exit 0 ;; esac
case "$1" in *fail*) echo "2026-01-02 00:00:00.000  ERROR  Client error: boom"; exit 3 ;; esac
case "$1" in *errline*) echo "2026-01-02 00:00:00.000  ERROR  Client error: transient" ;; esac
i=0
while true; do
  i=$((i+100))
  case "$1" in *quiet*) ;; *once*) [ $i -eq 100 ] && echo "2026-01-02 00:00:00.000  EVENT  CHECK_POINT|MODE=1|PING=3ms|POOL=0|TCPS=1|UDPS=0|TCPRX=1|TCPTX=1|UDPRX=0|UDPTX=0" ;; *) echo "2026-01-02 00:00:00.000  EVENT  CHECK_POINT|MODE=1|PING=3ms|POOL=0|TCPS=1|UDPS=0|TCPRX=$i|TCPTX=$i|UDPRX=0|UDPTX=0" ;; esac
  sleep 0.2
done
"#;

pub fn write_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-nodepass.sh");
    std::fs::write(&p, FAKE_INSTANCE).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

pub fn master_config(tls: TlsMode, env: Env) -> Config {
    Config {
        scheme: Scheme::Master,
        key: String::new(),
        tunnel: HostPort {
            host: "127.0.0.1".into(),
            port: 0,
        },
        targets: vec![],
        master_prefix: "/api".into(),
        params: Params {
            log: LogLevel::Info,
            tls,
            crt: String::new(),
            key_file: String::new(),
            dns_ttl: Duration::from_secs(300),
            sni: String::new(),
            min: 64,
            max: 1024,
            mode: RunMode::Auto,
            pool_type: 0,
            dial: None,
            read_timeout: Duration::ZERO,
            rate_mbps: 0,
            slot: 65536,
            proxy: ProxyProtocol::Off,
            block: BlockSet::default(),
            no_tcp: false,
            no_udp: false,
            auth: nodepass::config::AuthPolicy::Auto,
        },
        env,
        raw_log: String::new(),
    }
}

/// Fast timings for tests.
pub fn test_env() -> Env {
    Env {
        report_interval: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(1),
        ..Env::default()
    }
}

/// True once `config::parse_url` is the real parser (not the skeleton's stub).
pub fn parser_is_real() -> bool {
    nodepass::config::parse_url("client://127.0.0.1:1/127.0.0.1:2", Env::default()).is_ok()
}

pub fn options(exe: PathBuf, state: &Path) -> MasterOptions {
    MasterOptions {
        exe,
        state_dir: state.to_path_buf(),
        http: master::HttpLimits::default(),
        validate_urls: parser_is_real(),
        counter_save_interval: Duration::from_millis(200),
        url_log: "info".into(),
    }
}

/// A running master plus what tests need to talk to it.
pub struct TestMaster {
    pub handle: Option<MasterHandle>,
    pub addr: SocketAddr,
    pub key: String,
    /// Dropped after the handle (fields drop in order).
    _room: isolation::Guard,
}

impl TestMaster {
    pub fn start(opts: MasterOptions) -> Self {
        Self::start_with(master_config(TlsMode::Off, test_env()), opts)
    }

    pub fn start_with(cfg: Config, opts: MasterOptions) -> Self {
        let room = isolation::enter(Room::InProcessMaster);
        let state_file = opts.state_dir.join("nodepass.json");
        let handle = master::start(cfg, opts).expect("master starts");
        let addr = handle.local_addr();
        let key = poll(Duration::from_secs(5), || read_key(&state_file))
            .expect("state file with the API key");
        TestMaster {
            handle: Some(handle),
            addr,
            key,
            _room: room,
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        api_call(self.addr, &self.key, method, path, body)
    }

    pub fn events(&self) -> Events {
        Events::open(self.addr, &self.key)
    }
}

pub fn read_key(state_file: &Path) -> Option<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(state_file).ok()?).ok()?;
    v["instances"]
        .as_array()?
        .iter()
        .find(|i| i["id"] == "********")?["url"]
        .as_str()
        .map(str::to_string)
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(k) = key {
        raw.push_str(&format!("X-API-Key: {k}\r\n"));
    }
    if let Some(b) = body {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        raw.push_str("\r\n");
    }
    raw_request(addr, raw.as_bytes())
}

/// A request under `/api/v1` with the API key.
pub fn api_call(
    addr: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Reply {
    request(addr, method, &format!("/api/v1{path}"), Some(key), body)
}

/// Send raw bytes, read to EOF, parse the response.
pub fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Reply {
    parse_reply(&super::http_exchange(addr, bytes, Duration::from_secs(20)))
}

pub fn parse_reply(out: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// An `/events` reader that de-chunks and splits frames.
pub struct Events {
    pub stream: TcpStream,
    pub head: String,
    raw: Vec<u8>,
    text: String,
    pub ended: bool,
}

impl Events {
    pub fn open(addr: SocketAddr, key: &str) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let req = format!("GET /api/v1/events HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut ev = Events {
            stream,
            head: String::new(),
            raw: Vec::new(),
            text: String::new(),
            ended: false,
        };
        let end = Instant::now() + Duration::from_secs(5);
        while !ev.head_done() && Instant::now() < end {
            ev.read_some();
        }
        let pos = find(&ev.raw, b"\r\n\r\n").expect("SSE response head");
        ev.head = String::from_utf8_lossy(&ev.raw[..pos]).into_owned();
        ev.raw.drain(..pos + 4);
        ev
    }

    fn head_done(&self) -> bool {
        find(&self.raw, b"\r\n\r\n").is_some()
    }

    fn read_some(&mut self) {
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => self.ended = true,
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }

    fn dechunk(&mut self) {
        loop {
            let Some(eol) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.raw[..eol]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.text
                .push_str(std::str::from_utf8(&self.raw[eol + 2..eol + 2 + size]).unwrap());
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// The next raw frame (text before a blank line), waiting up to `limit`.
    pub fn next_frame(&mut self, limit: Duration) -> Option<String> {
        let end = Instant::now() + limit;
        loop {
            self.dechunk();
            if let Some(pos) = self.text.find("\n\n") {
                let frame = self.text[..pos].to_string();
                self.text.drain(..pos + 2);
                return Some(frame);
            }
            if self.ended || Instant::now() >= end {
                return None;
            }
            self.read_some();
        }
    }

    /// The next event's JSON (skipping the `retry:` frame).
    pub fn next_event(&mut self, limit: Duration) -> Option<Value> {
        let end = Instant::now() + limit;
        loop {
            let frame = self.next_frame(end.saturating_duration_since(Instant::now()))?;
            if let Some(data) = frame.strip_prefix("event: instance\ndata: ") {
                return Some(serde_json::from_str(data).unwrap());
            }
        }
    }

    /// Wait for an event matching `pred`.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let end = Instant::now() + limit;
        loop {
            let ev = self.next_event(end.saturating_duration_since(Instant::now()))?;
            if pred(&ev) {
                return Some(ev);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A standard test master with the fake instance program.
pub fn fake_master(tag: &str) -> (TempDir, TestMaster) {
    let dir = TempDir::new(tag);
    let exe = write_script(&dir.0);
    let m = TestMaster::start(options(exe, &dir.0.join("state")));
    (dir, m)
}

pub fn is_type(ev: &Value, kind: &str, id: &str) -> bool {
    ev["type"] == kind && ev["instance"]["id"] == id
}

pub fn is_status(ev: &Value, id: &str, status: &str) -> bool {
    is_type(ev, "update", id) && ev["instance"]["status"] == status
}
