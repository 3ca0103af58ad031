//! The logging trap: azure_core 0.21 logs whole requests (body and Authorization
//! header) at debug level. Nothing of ours may print a key or a token, and every
//! event that does must come from [`SECRET_BEARING_LOG_TARGETS`] below `info`, so that
//! capping those targets at `info` silences them.
//!
//! Events are captured by a global subscriber (set once for this test binary): a
//! scoped one (`set_default`) is flaky while other tests run, because tracing caches
//! callsite interest process-wide. This test's events are told apart by thread (its
//! runtime is current-thread, so the adapter, reqwest and the fake all run on it).

use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use vpnbridge_azure::{AzureEndpoint, SECRET_BEARING_LOG_TARGETS};
use vpnbridge_core::endpoint::VpnEndpoint;
use vpnbridge_core::model::Owner;
use vpnbridge_core::ops::AzureOp;
use vpnbridge_core::secret::Psk;

use super::{fake, settings};

/// One event: thread, target, level, its fields printed with Debug (as a formatter would).
type Event = (ThreadId, String, Level, String);

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Event>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        let m = event.metadata();
        self.0.lock().expect("not poisoned").push((std::thread::current().id(), m.target().to_owned(), *m.level(), f.0));
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::TRACE).with(capture.clone());
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this test binary");
        capture
    })
}

const KEY: &str = "Logged.Key_4711";
const TOKEN: &str = "fake-token";

#[tokio::test]
async fn keys_and_tokens_reach_no_log_of_ours_and_the_filter_silences_azure_core() {
    let capture = capture();
    let me = std::thread::current().id();
    let fake = fake().await;
    let ep = AzureEndpoint::with_static_token(settings(&fake), TOKEN).expect("endpoint");
    // The request body carries the key; the fake answers 404 (no such connection).
    let op = AzureOp::SetSharedKey { name: "cn".into(), shared_key: Psk::new(KEY).expect("valid") };
    let e = ep.start(&op).await.expect_err("no such connection");
    tracing::info!(error = %e, "start failed");
    ep.observe(&Owner::new("t")).await.expect("observe");

    let events: Vec<Event> = capture.0.lock().expect("not poisoned").iter().filter(|e| e.0 == me).cloned().collect();
    let leaking: Vec<&Event> = events.iter().filter(|e| e.3.contains(KEY) || e.3.contains(TOKEN)).collect();
    // The trap is real: azure_core prints the request (body, Authorization) at debug.
    assert!(!leaking.is_empty(), "azure_core no longer logs requests; revisit the filter");
    for (_, target, level, _) in &leaking {
        assert!(SECRET_BEARING_LOG_TARGETS.iter().any(|t| target.starts_with(t)), "a secret in an event of {target}");
        assert!(*level > Level::INFO, "a secret at {level} in {target}: capping at info would not hide it");
    }
    // What a filter capping those targets at info keeps: something, and no secret.
    let kept: Vec<&Event> =
        events.iter().filter(|e| !(SECRET_BEARING_LOG_TARGETS.iter().any(|t| e.1.starts_with(t)) && e.2 > Level::INFO)).collect();
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|e| !e.3.contains(KEY) && !e.3.contains(TOKEN)));
}
