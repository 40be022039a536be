//! Faults a fake can inject: queued for the next requests to a route, or drawn at random.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status, body and content type (and `Retry-After`, if given) instead.
    Status {
        status: u16,
        body: String,
        content_type: &'static str,
        retry_after: Option<String>,
    },
    /// Answer normally, after this long.
    Delay(Duration),
    /// Answer normally once the test opens the gate: a stall that ends exactly when told.
    Hold(Gate),
    /// Do the work (record it, change state), then never answer.
    HangAfterWork,
    /// Close the connection without answering, before doing the work.
    Drop,
    /// Answer 200 with a body of `bytes` bytes of JSON whitespace, produced as it is sent (the fake
    /// never holds it), with a `Content-Length` when `declared` (else chunked).
    HugeBody { bytes: u64, declared: bool },
}

impl Fault {
    pub fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            body: String::new(),
            content_type: "application/json",
            retry_after: None,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Fault {
        Fault::Status {
            status,
            body: body.to_string(),
            content_type: "application/json",
            retry_after: None,
        }
    }

    pub fn html(status: u16) -> Fault {
        Fault::Status {
            status,
            body: format!(
                "<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center><hr><center>nginx</center></body></html>"
            ),
            content_type: "text/html",
            retry_after: None,
        }
    }

    pub fn rate_limited(retry_after: Option<&str>) -> Fault {
        Fault::Status {
            status: 429,
            body: String::new(),
            content_type: "application/json",
            retry_after: retry_after.map(str::to_string),
        }
    }
}

/// Holds requests (see [`Fault::Hold`]) until [`Gate::open`]; every clone is the same gate.
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Gate {
        Gate(Arc::new(watch::channel(false).0))
    }

    /// Lets every held request, and any later one, through.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    pub(crate) async fn opened(&self) {
        let mut state = self.0.subscribe();
        let _ = state.wait_for(|open| *open).await;
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    queued: HashMap<&'static str, VecDeque<Fault>>,
    random: Option<(f64, Vec<Fault>)>,
}

impl Faults {
    pub(crate) fn push(&mut self, route: &'static str, fault: Fault) {
        self.queued.entry(route).or_default().push_back(fault);
    }

    pub(crate) fn set_random(&mut self, rate: f64, faults: Vec<Fault>) {
        self.random = (!faults.is_empty() && rate > 0.0).then_some((rate, faults));
    }

    pub(crate) fn clear(&mut self) {
        self.queued.clear();
        self.random = None;
    }

    pub(crate) fn next(&mut self, route: &'static str) -> Option<Fault> {
        if let Some(fault) = self.queued.get_mut(route).and_then(VecDeque::pop_front) {
            return Some(fault);
        }
        let (rate, faults) = self.random.as_ref()?;
        if rand::random_bool(rate.clamp(0.0, 1.0)) {
            let index = rand::random_range(0..faults.len());
            Some(faults[index].clone())
        } else {
            None
        }
    }
}
