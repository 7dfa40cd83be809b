//! Rows into domain values, written once for every backend. A backend implements `Columns` for
//! its row type (values by column name); the decoders here turn the columns both schemas share
//! into `Webhook`, `Event` and delivery-log rows. A column that does not decode is an error that
//! names it.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::sealing::Keyring;
use crate::error::{Error, Result};
use crate::model::{
    enum_from_text, Attempt, Delivery, Direction, Event, EventId, EventSubscription,
    PreviousSecret, Receipt, Secret, Webhook,
};

/// A row's values by column name.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<Option<i64>>;
    fn flag(&self, name: &str) -> Result<bool>;
}

fn null(name: &str) -> Error {
    Error::Store(format!("column `{name}` is NULL"))
}

fn text(c: &impl Columns, name: &str) -> Result<String> {
    c.text(name)?.ok_or_else(|| null(name))
}

fn int(c: &impl Columns, name: &str) -> Result<i64> {
    c.int(name)?.ok_or_else(|| null(name))
}

fn enumerated<T: DeserializeOwned>(c: &impl Columns, name: &str) -> Result<T> {
    let t = text(c, name)?;
    enum_from_text(&t)
        .ok_or_else(|| Error::Store(format!("column `{name}`: unexpected stored value {t:?}")))
}

fn json<T: DeserializeOwned>(c: &impl Columns, name: &str) -> Result<T> {
    serde_json::from_str(&text(c, name)?)
        .map_err(|e| Error::backend(format!("column `{name}`: not the JSON expected ({e})"), e))
}

/// The columns of an `event_subscriptions` row, in both schemas.
pub(crate) const SUBSCRIPTION_COLUMNS: &str =
    "id, principal, name, arguments, cursor, not_before, expires_at, created_at, refreshed_at";

pub(crate) fn subscription(c: &impl Columns) -> Result<EventSubscription> {
    Ok(EventSubscription {
        id: text(c, "id")?.into(),
        principal: text(c, "principal")?,
        name: text(c, "name")?,
        arguments: text(c, "arguments")?,
        cursor: int(c, "cursor")?,
        not_before: c.int("not_before")?,
        expires_at: c.int("expires_at")?,
        created_at: int(c, "created_at")?,
        refreshed_at: int(c, "refreshed_at")?,
    })
}

/// A webhook's sealed columns, as both backends write them.
pub(crate) struct Sealed {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub headers: String,
}

impl Sealed {
    pub fn of(w: &Webhook, keys: &Keyring) -> Sealed {
        let id = w.id.as_str();
        Sealed {
            secret: keys.seal(id, w.secret.expose()),
            previous_secret: w
                .previous_secret
                .as_ref()
                .map(|p| keys.seal(id, p.secret.expose())),
            headers: keys.seal(
                id,
                &headers_json(w.direction, &w.extra_headers, &w.required_headers),
            ),
        }
    }
}

/// A webhook's secret columns as stored, for re-sealing them (upgrade, key rotation): one
/// rule for both backends.
pub(crate) struct StoredSecrets {
    pub id: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub headers: String,
}

impl StoredSecrets {
    pub fn read(c: &impl Columns) -> Result<Self> {
        Ok(StoredSecrets {
            id: text(c, "id")?,
            secret: text(c, "secret")?,
            previous_secret: c.text("previous_secret")?,
            headers: text(c, "headers")?,
        })
    }

    /// Whether a column is not sealed under the keyring's sealing key.
    pub fn is_stale(&self, keys: &Keyring) -> bool {
        [
            Some(&self.secret),
            self.previous_secret.as_ref(),
            Some(&self.headers),
        ]
        .into_iter()
        .flatten()
        .any(|v| keys.needs_sealing(v))
    }

    /// The same values, sealed under the sealing key.
    pub fn resealed(&self, keys: &Keyring) -> Result<StoredSecrets> {
        let reseal =
            |v: &str| -> Result<String> { Ok(keys.seal(&self.id, &keys.open(&self.id, v)?)) };
        Ok(StoredSecrets {
            id: self.id.clone(),
            secret: reseal(&self.secret)?,
            previous_secret: self.previous_secret.as_deref().map(reseal).transpose()?,
            headers: reseal(&self.headers)?,
        })
    }
}

/// The headers column's plain JSON: one column holds either kind of header map, by direction.
pub(crate) fn headers_json(
    direction: Direction,
    extra: &BTreeMap<String, String>,
    required: &BTreeMap<String, Secret>,
) -> String {
    match direction {
        Direction::Outbound => super::json_text(extra),
        Direction::Inbound => super::json_text(
            &required
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose()))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// A webhook row, its sealed columns opened with `keys` (see `sealing`).
pub(crate) fn webhook(c: &impl Columns, keys: &Keyring) -> Result<Webhook> {
    let id = text(c, "id")?;
    let direction: Direction = enumerated(c, "direction")?;
    // One column holds either kind of header map, by direction.
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&keys.open(&id, &text(c, "headers")?)?)
            .map_err(|e| Error::backend(format!("column `headers`: {e}"), e))?;
    let (extra_headers, required_headers) = match direction {
        Direction::Outbound => (headers, BTreeMap::new()),
        Direction::Inbound => (
            BTreeMap::new(),
            headers
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
        ),
    };
    let previous_secret = match (
        c.text("previous_secret")?,
        c.int("previous_secret_expires_at")?,
    ) {
        (Some(secret), Some(expires_at)) => Some(PreviousSecret {
            secret: Secret::new(keys.open(&id, &secret)?),
            expires_at,
        }),
        _ => None,
    };
    Ok(Webhook {
        secret: Secret::new(keys.open(&id, &text(c, "secret")?)?),
        id: id.into(),
        direction,
        target_url: text(c, "target_url")?,
        provider: enumerated(c, "provider")?,
        events: json(c, "events")?,
        description: text(c, "description")?,
        enabled: c.flag("enabled")?,
        previous_secret,
        extra_headers,
        required_headers,
        created_at: int(c, "created_at")?,
        updated_at: int(c, "updated_at")?,
        failure_count: int(c, "failure_count")?,
        first_failure_at: c.int("first_failure_at")?,
        disabled_reason: c.text("disabled_reason")?,
        forward_to: json(c, "forward_to")?,
        accept_compact_signatures: c.flag("accept_compact_signatures")?,
        filter: c
            .text("filter")?
            .map(|f| crate::model::Filter::parse_text(&f))
            .transpose()
            .map_err(|e| Error::backend(format!("column `filter`: {e}"), e))?,
        owner: crate::model::Principal::new(text(c, "owner")?),
    })
}

pub(crate) fn event(c: &impl Columns) -> Result<Event> {
    Ok(Event {
        seq: int(c, "seq")?,
        id: text(c, "id")?.into(),
        webhook_id: text(c, "webhook_id")?.into(),
        provider_event_id: c.text("provider_event_id")?,
        event: text(c, "event")?,
        received_at: int(c, "received_at")?,
        headers: json(c, "headers")?,
        payload: json(c, "payload")?,
    })
}

/// The columns of a `deliveries` row as stored, in both schemas.
macro_rules! stored_delivery_columns {
    () => {
        "seq, id, webhook_id, event_id, event, direction, trigger, attempt, url, \
        status, status_code, duration_ms, error, request_headers, request_body, response_headers, \
        response_body, created_at, next_attempt_at, message_id"
    };
}
pub(crate) const STORED_DELIVERY_COLUMNS: &str = stored_delivery_columns!();

/// A delivery-log row as `delivery` and `attempt` read it: the stored columns and
/// `message_body`, the first `LOG_BODY_LIMIT` + 1 characters of a queued attempt's message (the
/// body it sent, stored once per message; see `store::queue::COMPLETE`), NULL for rows without
/// one. The queue's claim, which reads the body whole, and a page of the log, shown without
/// bodies, select `STORED_DELIVERY_COLUMNS` and `NULL AS message_body`.
pub(crate) const DELIVERY_COLUMNS: &str = concat!(
    stored_delivery_columns!(),
    ", (SELECT substr(body, 1, 65537) FROM messages WHERE messages.id = message_id) AS message_body"
);

// The excerpt above must hold a cut body's first LOG_BODY_LIMIT bytes and one more character.
const _: () = assert!(crate::model::LOG_BODY_LIMIT + 1 == 65537);

/// The `events` columns a stored event's receipt is read from, in both schemas.
pub(crate) const STORED_RECEIPT_COLUMNS: &str =
    "seq, id, webhook_id, event, received_at, headers, payload";

/// The receipt of a stored event (see `store::log`), from `STORED_RECEIPT_COLUMNS`.
pub(crate) fn stored_receipt(c: &impl Columns) -> Result<Receipt> {
    Ok(super::log::StoredReceipt {
        seq: int(c, "seq")?,
        id: text(c, "id")?,
        webhook_id: text(c, "webhook_id")?,
        event: text(c, "event")?,
        received_at: int(c, "received_at")?,
        headers: json(c, "headers")?,
        payload: text(c, "payload")?,
    }
    .into())
}

/// A delivery-log row: a receipt (direction `inbound`) or an attempt.
pub(crate) fn delivery(c: &impl Columns) -> Result<Delivery> {
    Ok(match enumerated::<Direction>(c, "direction")? {
        Direction::Inbound => Delivery::Receipt(Receipt {
            seq: int(c, "seq")?,
            id: text(c, "id")?.into(),
            webhook_id: text(c, "webhook_id")?.into(),
            event_id: c.text("event_id")?.map(EventId::from),
            event: c.text("event")?,
            url: text(c, "url")?,
            status: enumerated(c, "status")?,
            status_code: c.int("status_code")?,
            error: c.text("error")?,
            request_headers: json(c, "request_headers")?,
            request_body: c.text("request_body")?,
            created_at: int(c, "created_at")?,
        }),
        Direction::Outbound => Delivery::Attempt(attempt(c)?),
    })
}

/// An outbound row; the queue reads these directly.
pub(crate) fn attempt(c: &impl Columns) -> Result<Attempt> {
    Ok(Attempt {
        seq: int(c, "seq")?,
        id: text(c, "id")?.into(),
        webhook_id: text(c, "webhook_id")?.into(),
        // Attempts written before the queue existed (SQLite schema 1) have no message.
        message_id: c.text("message_id")?.unwrap_or_default().into(),
        event_id: c.text("event_id")?.map(EventId::from),
        event: c.text("event")?.unwrap_or_default(),
        trigger: enumerated(c, "trigger")?,
        number: int(c, "attempt")?,
        url: text(c, "url")?,
        status: enumerated(c, "status")?,
        status_code: c.int("status_code")?,
        duration_ms: c.int("duration_ms")?,
        error: c.text("error")?,
        request_headers: json(c, "request_headers")?,
        // An attempt sent outside the queue (a test, a challenge) or logged by an older
        // release keeps its own excerpt; a queued one shows its message's.
        request_body: match c.text("request_body")? {
            Some(body) => Some(body),
            None => c
                .text("message_body")?
                .map(|b| crate::model::log_excerpt(b.as_bytes())),
        },
        response_headers: json(c, "response_headers")?,
        response_body: c.text("response_body")?,
        created_at: int(c, "created_at")?,
        next_attempt_at: c.int("next_attempt_at")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row as a map: what any backend's row looks like to the decoders.
    struct Map(HashMap<&'static str, &'static str>);

    impl Columns for Map {
        fn text(&self, name: &str) -> Result<Option<String>> {
            Ok(self.0.get(name).map(|v| v.to_string()))
        }
        fn int(&self, name: &str) -> Result<Option<i64>> {
            self.0
                .get(name)
                .map(|v| {
                    v.parse()
                        .map_err(|_| Error::Store(format!("column `{name}`: not an integer")))
                })
                .transpose()
        }
        fn flag(&self, name: &str) -> Result<bool> {
            Ok(self.0.get(name) == Some(&"1"))
        }
    }

    fn event_row() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("seq", "7"),
            ("id", "e1"),
            ("webhook_id", "w1"),
            ("event", "order.paid"),
            ("received_at", "1000"),
            ("headers", "{}"),
            ("payload", "{\"a\":1}"),
        ])
    }

    #[test]
    fn decodes_by_name_and_names_the_column_that_does_not_decode() {
        let e = event(&Map(event_row())).unwrap();
        assert_eq!(
            (e.seq, e.id.as_str(), e.payload["a"].as_i64()),
            (7, "e1", Some(1))
        );
        let mut bad = event_row();
        bad.insert("headers", "not json");
        let err = event(&Map(bad)).unwrap_err().to_string();
        assert!(err.contains("column `headers`"), "{err}");
        let mut missing = event_row();
        missing.remove("received_at");
        let err = event(&Map(missing)).unwrap_err().to_string();
        assert!(err.contains("column `received_at` is NULL"), "{err}");
    }
}
