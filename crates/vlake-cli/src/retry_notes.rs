//! Notes on stderr while an object store retries a request (an S3 endpoint that times out or
//! fails), so that a slow endpoint does not look like a hang. object_store reports its retries
//! as `tracing` events at level INFO; this subscriber prints those and ignores everything else.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Prints object_store's retry events as `note: ...` lines on stderr.
struct RetryNotes;

/// Collects an event's message.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl Subscriber for RetryNotes {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && metadata.level() <= &Level::INFO && metadata.target().starts_with("object_store")
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message::default();
        event.record(&mut message);
        if message.0.contains("retry") {
            eprintln!("note: {} (still trying)", message.0);
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Installs the subscriber for the whole process (once; later calls do nothing).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(RetryNotes);
}
