//! The retry policy (Svix / Standard Webhooks): which outcomes are retried, and when.

use std::time::Duration;

use crate::model::{Attempt, DeliveryStatus};

/// Seconds between attempts after the first (immediate) one: 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h.
pub const DEFAULT_SCHEDULE: &str = "5,300,1800,7200,18000,36000,36000";
/// 429 and timeouts mean "slow down": never retry sooner than this.
pub const THROTTLE_FLOOR: Duration = Duration::from_secs(60);
/// Consecutive failure for this long disables an outbound webhook.
pub const DEFAULT_DISABLE_AFTER_SECS: u64 = 5 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct Policy {
    pub schedule: Vec<Duration>,
    pub disable_after: Duration,
    /// The profile of MCP Events subscription deliveries (SEP-3415): 410 and 413 end that
    /// delivery only, where an outbound webhook is disabled by a 410.
    pub subscription: bool,
}

/// SEP-3415's bounded retries for subscription deliveries ("3 to 5 attempts spread over no more
/// than 10 to 15 minutes"): after the first, 5 s, 30 s, 2 min and 5 min (±20 %): 5 attempts
/// within about 9 minutes; an abandoned event only holds the watermark until then.
pub const SUBSCRIPTION_SCHEDULE: &str = "5,30,120,300";
/// A subscription whose every delivery failed for an hour is suspended (`deliveryStatus.active:
/// false`) until a refresh: a sustained failure rate over a window, not a count of failures, as
/// the SEP advises, so a short outage of the endpoint does not suspend it.
pub const SUBSCRIPTION_SUSPEND_AFTER: Duration = Duration::from_secs(3600);

impl Policy {
    /// The policy of MCP Events subscription deliveries.
    pub fn for_subscriptions() -> Policy {
        Policy {
            schedule: parse_schedule(SUBSCRIPTION_SCHEDULE).expect("a valid schedule"),
            disable_after: SUBSCRIPTION_SUSPEND_AFTER,
            subscription: true,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Done,
    RetryIn(Duration),
    /// No retry: the schedule is used up or the target asked to stop.
    GiveUp(String),
    /// No retry, and the webhook is disabled for this reason.
    Disable(String),
}

pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    format!("{p:?} is not a number of seconds; use e.g. {DEFAULT_SCHEDULE}")
                })
        })
        .collect()
}

/// `Retry-After` in delta-seconds or as an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs))
}

impl Policy {
    /// Decides after attempt `d` (already filled with its outcome). `failing_for` is how long the
    /// webhook has failed without a success in between, this attempt included.
    pub fn verdict(&self, d: &Attempt, answer: &super::Answer, failing_for: Duration) -> Verdict {
        if d.status == DeliveryStatus::Succeeded {
            return Verdict::Done;
        }
        match d.status_code {
            Some(code @ (410 | 413)) if self.subscription => {
                return Verdict::GiveUp(format!(
                    "the callback answered {code}: this delivery is not retried (SEP-3415); the subscription goes on"
                ));
            }
            Some(410) => return Verdict::Disable("the target answered 410 Gone".into()),
            _ => {}
        }
        if failing_for >= self.disable_after {
            return Verdict::Disable(format!(
                "every delivery failed for {} hours",
                self.disable_after.as_secs() / 3600
            ));
        }
        if answer.abort {
            return Verdict::GiveUp("the target answered webhook-delivery: abort-message".into());
        }
        let Some(base) = self.schedule.get(d.number.max(1) as usize - 1).copied() else {
            return Verdict::GiveUp(format!("no retries left after {} attempts", d.number));
        };
        let mut delay = jitter(base);
        if let Some(asked) = answer.retry_after {
            delay = asked.clamp(base, base * 2);
        }
        if d.status_code == Some(429) || answer.timed_out {
            delay = delay.max(THROTTLE_FLOOR);
        }
        Verdict::RetryIn(delay)
    }
}

/// ±20 %, so that many failed deliveries do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let unit = u32::from_le_bytes(b) as f64 / u32::MAX as f64; // 0..=1
    d.mul_f64(0.8 + 0.4 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::Answer;
    use crate::model::{MessageId, Trigger};

    fn failed(attempt: i64, code: Option<i64>) -> Attempt {
        let mut d = Attempt::new(
            "w".into(),
            MessageId::generate(),
            "e".into(),
            Trigger::Scheduled,
            "http://x".into(),
        );
        d.number = attempt;
        d.status = DeliveryStatus::Failed;
        d.status_code = code;
        d
    }

    fn policy() -> Policy {
        Policy {
            schedule: parse_schedule(DEFAULT_SCHEDULE).unwrap(),
            disable_after: Duration::from_secs(DEFAULT_DISABLE_AFTER_SECS),
            subscription: false,
        }
    }

    #[test]
    fn a_subscription_gives_up_on_410_and_413_without_suspending_and_retries_for_minutes() {
        let p = Policy::for_subscriptions();
        let none = Answer::default();
        for code in [410, 413] {
            match p.verdict(&failed(1, Some(code)), &none, Duration::ZERO) {
                Verdict::GiveUp(why) => assert!(why.contains("goes on"), "{why}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        // Five attempts in all, the last retry at most 6 minutes after the one before.
        let mut total = Duration::ZERO;
        for attempt in 1..=4 {
            match p.verdict(&failed(attempt, Some(500)), &none, Duration::ZERO) {
                Verdict::RetryIn(d) => total += d,
                other => panic!("{attempt}: {other:?}"),
            }
        }
        assert!(total <= Duration::from_secs(600), "{total:?}");
        assert!(matches!(
            p.verdict(&failed(5, Some(500)), &none, Duration::ZERO),
            Verdict::GiveUp(_)
        ));
        // An hour of nothing but failures suspends it; an outbound webhook's 410 still disables.
        assert!(matches!(
            p.verdict(&failed(2, Some(500)), &none, Duration::from_secs(3600)),
            Verdict::Disable(_)
        ));
        assert!(matches!(
            policy().verdict(&failed(1, Some(410)), &none, Duration::ZERO),
            Verdict::Disable(_)
        ));
    }

    #[test]
    fn follows_the_schedule_with_jitter_then_gives_up() {
        let p = policy();
        let none = Answer::default();
        for (attempt, base) in [(1, 5.0), (2, 300.0), (7, 36000.0)] {
            match p.verdict(&failed(attempt, Some(500)), &none, Duration::ZERO) {
                Verdict::RetryIn(d) => {
                    let s = d.as_secs_f64();
                    assert!(
                        s >= base * 0.8 - 1e-6 && s <= base * 1.2 + 1e-6,
                        "{attempt}: {s}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            p.verdict(&failed(8, Some(500)), &none, Duration::ZERO),
            Verdict::GiveUp(_)
        ));
    }

    #[test]
    fn retry_after_is_clamped_and_throttling_waits_a_minute() {
        let p = policy();
        let asked = |secs| Answer {
            retry_after: Some(Duration::from_secs(secs)),
            ..Default::default()
        };
        // Scheduled 300 s: Retry-After 1 s becomes 300 s, 10000 s becomes 600 s, 450 s stays.
        assert_eq!(
            p.verdict(&failed(2, Some(503)), &asked(1), Duration::ZERO),
            Verdict::RetryIn(Duration::from_secs(300))
        );
        assert_eq!(
            p.verdict(&failed(2, Some(503)), &asked(10_000), Duration::ZERO),
            Verdict::RetryIn(Duration::from_secs(600))
        );
        assert_eq!(
            p.verdict(&failed(2, Some(503)), &asked(450), Duration::ZERO),
            Verdict::RetryIn(Duration::from_secs(450))
        );
        // Scheduled 5 s, but a 429 or a timeout waits at least 60 s.
        assert_eq!(
            p.verdict(&failed(1, Some(429)), &asked(5), Duration::ZERO),
            Verdict::RetryIn(THROTTLE_FLOOR)
        );
        let timeout = Answer {
            timed_out: true,
            ..Default::default()
        };
        assert!(
            matches!(p.verdict(&failed(1, None), &timeout, Duration::ZERO), Verdict::RetryIn(d) if d >= THROTTLE_FLOOR)
        );
    }

    #[test]
    fn gone_abort_and_long_failure_stop_retries() {
        let p = policy();
        let none = Answer::default();
        assert!(matches!(
            p.verdict(&failed(1, Some(410)), &none, Duration::ZERO),
            Verdict::Disable(_)
        ));
        let abort = Answer {
            abort: true,
            ..Default::default()
        };
        assert!(matches!(
            p.verdict(&failed(1, Some(500)), &abort, Duration::ZERO),
            Verdict::GiveUp(_)
        ));
        let five_days = Duration::from_secs(DEFAULT_DISABLE_AFTER_SECS);
        assert!(matches!(
            p.verdict(&failed(3, Some(500)), &none, five_days),
            Verdict::Disable(_)
        ));
        let mut ok = failed(1, Some(200));
        ok.status = DeliveryStatus::Succeeded;
        assert_eq!(p.verdict(&ok, &none, five_days), Verdict::Done);
    }

    #[test]
    fn parses_schedules_and_retry_after() {
        assert_eq!(
            parse_schedule("1, 2.5").unwrap(),
            vec![Duration::from_secs(1), Duration::from_millis(2500)]
        );
        assert!(parse_schedule("1,x").is_err());
        assert!(parse_schedule("-1").is_err());
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
