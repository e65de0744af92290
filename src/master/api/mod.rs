//! The master's REST API (`spec/MASTER_API.md`): routing, the key check and one handler
//! per route, on top of the HTTP layer (`http`) and instance management (`instances`).
//!
//! - `context`: [`context::Api`], what every handler reaches; `router`: CORS preflight,
//!   API key, dispatch (and the `Handler` the HTTP server serves).
//! - `instances` (GET/POST/PUT/DELETE), `patch` (PATCH), `events` (`/events`), `info`,
//!   `tcping`, `metrics`, `openapi`, `docs_page`.

pub mod context;
pub mod docs_page;
pub mod events;
pub mod info;
pub mod instances;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod router;
pub mod tcping;
