//! Keeping unauthenticated junk cheap: anyone who knows (or guesses) a receive URL can POST to
//! it. Each source (peer address and webhook id) gets a budget of fully recorded rejections per
//! minute, a log line and a delivery-log row each; beyond it, rejections are only counted
//! (`rejections_suppressed` at `/healthz`), and one line says so when suppression starts and
//! how many were suppressed when the source's next minute begins. The table of sources is
//! bounded; when full it starts over (a flood of distinct sources only costs memory it frees).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rejections recorded in full per source per window.
pub const PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
const MAX_SOURCES: usize = 4096;

#[derive(Default)]
pub struct RejectionLimiter {
    sources: Mutex<HashMap<(Option<IpAddr>, String), Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

/// Whether one rejection is recorded in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Full,
    /// Counted only.
    Suppressed,
}

impl RejectionLimiter {
    pub fn check(&self, source: Option<IpAddr>, webhook_id: &str, now: Instant) -> Record {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES {
            sources.retain(|_, w| now.duration_since(w.started) < WINDOW);
            if sources.len() >= MAX_SOURCES {
                sources.clear();
            }
        }
        let key = (source, crate::error::bounded(webhook_id, 64));
        let window = sources.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            let suppressed = window.count.saturating_sub(PER_WINDOW);
            if suppressed > 0 {
                tracing::warn!(
                    source = ?source,
                    webhook_id = %crate::error::bounded(webhook_id, 64),
                    suppressed,
                    "inbound rejections from this source were counted but not logged in the last minute"
                );
            }
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count += 1;
        match window.count {
            n if n <= PER_WINDOW => Record::Full,
            n if n == PER_WINDOW + 1 => {
                tracing::warn!(
                    source = ?source,
                    webhook_id = %crate::error::bounded(webhook_id, 64),
                    budget = PER_WINDOW,
                    "repeated inbound rejections from one source: further ones this minute are counted, not logged"
                );
                Record::Suppressed
            }
            _ => Record::Suppressed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_budget_per_window_and_others_are_unaffected() {
        let l = RejectionLimiter::default();
        let t0 = Instant::now();
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let full = (0..50)
            .filter(|_| l.check(a, "wh_1", t0) == Record::Full)
            .count();
        assert_eq!(full, PER_WINDOW as usize);
        assert_eq!(l.check(b, "wh_1", t0), Record::Full);
        assert_eq!(l.check(a, "wh_2", t0), Record::Full);
        assert_eq!(l.check(a, "wh_1", t0 + WINDOW), Record::Full);
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = RejectionLimiter::default();
        let t0 = Instant::now();
        for n in 0..(MAX_SOURCES * 3) {
            l.check(None, &format!("wh_{n}"), t0);
        }
        assert!(l.sources.lock().unwrap().len() <= MAX_SOURCES);
    }
}
