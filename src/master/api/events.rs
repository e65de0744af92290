//! `/events`: the instance event stream. The hub's subscribers are what the HTTP layer
//! streams ([`EventSource`]).

use std::rc::Rc;
use std::task::{Context, Poll};

use crate::master::http::message::{Body, EventSource, Request, Response};
use crate::master::instances::core::Master;
use crate::master::instances::hub::{self, Subscriber};

impl EventSource for Subscriber {
    fn poll_frames(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<Rc<str>>>> {
        self.poll_next(cx)
    }

    fn close(&self) {
        Subscriber::close(self);
    }
}

/// `/events`: the SSE stream, with one `initial` per instance.
pub fn handle(m: &Master, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::error(405, "Method not allowed");
    }
    let initial: Vec<String> = m
        .instances
        .borrow()
        .iter()
        .filter(|i| !i.run.deleted)
        .map(|i| hub::frame("initial", Some(i.to_json()), ""))
        .collect();
    let sub = m.hub.subscribe(initial);
    Response {
        status: 200,
        content_type: Some("text/event-stream"),
        body: Body::Events(sub),
        location: None,
    }
}
