//! Keeping unauthenticated junk cheap: anyone who knows (or guesses) a receive URL can POST to
//! it, and anyone can invent a new webhook id per request. So the budget of fully recorded
//! refusals (a log line and a delivery-log row each) belongs to the *source*, whatever URL it
//! posts to: a peer address, or for IPv6 its /64 (one host usually holds a whole /64). Above all
//! sources sits one global cap, so a flood from many addresses writes no more rows a minute than
//! one. Beyond either budget, refusals are only counted (`rejections_suppressed` at `/healthz`);
//! one line says so when a source's suppression starts, and how many were suppressed when its
//! next minute begins. The table of sources is bounded; when full it starts over (a flood of
//! distinct sources only costs memory it frees). What one recorded refusal may keep is bounded
//! in `service::events` (no headers for an unknown id, about 2 KiB in all).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusals recorded in full per source per window.
pub const PER_SOURCE: u32 = 10;
/// Refusals recorded in full per window, all sources together.
pub const GLOBAL: u32 = 100;
const WINDOW: Duration = Duration::from_secs(60);
const MAX_SOURCES: usize = 4096;

#[derive(Default)]
pub struct RejectionLimiter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sources: HashMap<Source, Window>,
    all: Option<Window>,
}

/// Who a budget belongs to: an IPv4 address, an IPv6 /64, or "unknown" (in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Unknown,
    V4(u32),
    V6Net(u64),
}

impl Source {
    fn of(addr: Option<IpAddr>) -> Self {
        match addr.map(|a| a.to_canonical()) {
            None => Source::Unknown,
            Some(IpAddr::V4(a)) => Source::V4(a.into()),
            Some(IpAddr::V6(a)) => Source::V6Net((u128::from(a) >> 64) as u64),
        }
    }
}

struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            started: now,
            count: 0,
        }
    }

    /// Counts one refusal, starting a new window when this one is over; returns the count
    /// within the window and how many the window just ended suppressed beyond `budget`.
    fn count(&mut self, now: Instant, budget: u32) -> (u32, u32) {
        let mut ended = 0;
        if now.duration_since(self.started) >= WINDOW {
            ended = self.count.saturating_sub(budget);
            *self = Window::new(now);
        }
        self.count += 1;
        (self.count, ended)
    }
}

/// Whether one refusal is recorded in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Full,
    /// Counted only.
    Suppressed,
}

impl RejectionLimiter {
    pub fn check(&self, source: Option<IpAddr>, now: Instant) -> Record {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let sources = &mut state.sources;
        if sources.len() >= MAX_SOURCES {
            sources.retain(|_, w| now.duration_since(w.started) < WINDOW);
            if sources.len() >= MAX_SOURCES {
                sources.clear();
            }
        }
        let (n, ended) = sources
            .entry(Source::of(source))
            .or_insert_with(|| Window::new(now))
            .count(now, PER_SOURCE);
        if ended > 0 {
            tracing::warn!(source = ?source, suppressed = ended,
                "inbound refusals from this source were counted but not logged in the last minute");
        }
        if n > PER_SOURCE {
            if n == PER_SOURCE + 1 {
                tracing::warn!(source = ?source, budget = PER_SOURCE,
                    "repeated inbound refusals from one source: further ones this minute are counted, not logged");
            }
            return Record::Suppressed;
        }
        // Only what a source's own budget let through counts against the global cap, so one
        // noisy source cannot use it up for everyone else.
        let (n, ended) = state
            .all
            .get_or_insert_with(|| Window::new(now))
            .count(now, GLOBAL);
        if ended > 0 {
            tracing::warn!(
                suppressed = ended,
                "inbound refusals over the global cap were counted but not logged in the last minute"
            );
        }
        if n > GLOBAL {
            if n == GLOBAL + 1 {
                tracing::warn!(
                    budget = GLOBAL,
                    "inbound refusals from many sources: further ones this minute are counted, not logged"
                );
            }
            return Record::Suppressed;
        }
        Record::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn full(l: &RejectionLimiter, source: Option<IpAddr>, times: usize, now: Instant) -> usize {
        (0..times)
            .filter(|_| l.check(source, now) == Record::Full)
            .count()
    }

    #[test]
    fn a_source_gets_its_budget_per_window_and_others_are_unaffected() {
        let l = RejectionLimiter::default();
        let t0 = Instant::now();
        assert_eq!(full(&l, ip("10.0.0.1"), 50, t0), PER_SOURCE as usize);
        assert_eq!(l.check(ip("10.0.0.2"), t0), Record::Full);
        assert_eq!(l.check(ip("10.0.0.1"), t0 + WINDOW), Record::Full);
    }

    #[test]
    fn one_ipv6_network_is_one_source_and_mapped_ipv4_is_its_address() {
        let l = RejectionLimiter::default();
        let t0 = Instant::now();
        let spread = (0..50)
            .filter(|n| l.check(ip(&format!("2001:db8:1:2::{n:x}")), t0) == Record::Full)
            .count();
        assert_eq!(spread, PER_SOURCE as usize);
        assert_eq!(l.check(ip("2001:db8:1:3::1"), t0), Record::Full);
        assert_eq!(full(&l, ip("192.0.2.7"), PER_SOURCE as usize, t0), 10);
        assert_eq!(l.check(ip("::ffff:192.0.2.7"), t0), Record::Suppressed);
    }

    #[test]
    fn many_sources_share_one_global_cap() {
        let l = RejectionLimiter::default();
        let t0 = Instant::now();
        let recorded: usize = (0..1000u32)
            .map(|n| full(&l, Some(IpAddr::V4(n.into())), 3, t0))
            .sum();
        assert_eq!(recorded, GLOBAL as usize);
        assert_eq!(l.check(ip("10.9.9.9"), t0 + WINDOW), Record::Full);
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = RejectionLimiter::default();
        let t0 = Instant::now();
        for n in 0..(MAX_SOURCES as u32 * 3) {
            l.check(Some(IpAddr::V4(n.into())), t0);
        }
        assert!(l.state.lock().unwrap().sources.len() <= MAX_SOURCES);
    }
}
