//! The event catalogue: every event type the seed platforms document, with an example payload
//! in that sender's own shape. `list_event_types` serves it and `test_webhook` sends from it.

use std::sync::LazyLock;

use serde_json::{json, Value};

use crate::model::Provider;

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct EventType {
    /// The sending platform, e.g. `voyager`.
    pub platform: String,
    /// The signature preset a webhook for this platform uses.
    pub provider: Provider,
    pub event: &'static str,
    pub category: &'static str,
    pub description: &'static str,
    /// A payload in the sender's own shape.
    #[schemars(schema_with = "crate::mcp::any_json")]
    pub example: Value,
}

/// The example payload for `event`, preferring the given scheme's platforms.
pub fn find(event: &str, provider: Provider) -> Option<&'static EventType> {
    CATALOGUE
        .iter()
        .find(|t| t.event == event && t.provider == provider)
        .or_else(|| CATALOGUE.iter().find(|t| t.event == event))
}

/// Entries for a platform (`voyager`) or a signature preset (`generic`); all when `None`.
pub fn list(filter: Option<&str>) -> Vec<&'static EventType> {
    CATALOGUE
        .iter()
        .filter(|t| {
            filter.is_none_or(|f| {
                // Operational events belong to no sender's signature preset.
                t.platform == f || (t.provider.to_string() == f && t.category != "operational")
            })
        })
        .collect()
}

pub fn platforms() -> Vec<&'static str> {
    let mut p: Vec<_> = CATALOGUE.iter().map(|t| t.platform.as_str()).collect();
    p.dedup();
    p
}

/// An operational event of webhook-mcp itself (see `service::operational`): the example is
/// the payload as stored.
fn operational(event: &'static str, description: &'static str, example: Value) -> EventType {
    EventType {
        platform: "webhook-mcp".into(),
        provider: Provider::None,
        event,
        category: "operational",
        description,
        example,
    }
}

fn voyager(
    event: &'static str,
    category: &'static str,
    description: &'static str,
    data: Value,
) -> EventType {
    EventType {
        platform: "voyager".into(),
        provider: Provider::Generic,
        event,
        category,
        description,
        example: json!({
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "event": event,
            "tenantId": "32e365dc-e8c4-4caa-8637-0e6b48dfeccd",
            "tenantName": "Acme",
            "timestamp": "2026-03-17T10:30:00Z",
            "data": data,
        }),
    }
}

fn kakiyo(event: &'static str, description: &'static str, data: Value) -> EventType {
    EventType {
        platform: "kakiyo".into(),
        provider: Provider::Kakiyo,
        event,
        category: "outreach",
        description,
        example: json!({
            "event": event,
            "teamId": "team_12345abcde",
            "timestamp": "2023-06-15T10:30:00Z",
            "data": data,
        }),
    }
}

fn preset(
    provider: Provider,
    event: &'static str,
    description: &'static str,
    example: Value,
) -> EventType {
    EventType {
        platform: provider.to_string(),
        provider,
        event,
        category: "platform",
        description,
        example,
    }
}

fn slack_event(inner: Value) -> Value {
    json!({
        "token": "XXYYZZ",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event": inner,
        "type": "event_callback",
        "event_id": "Ev08MFMKH6",
        "event_time": 1732442400
    })
}

fn leadshark(event: &'static str, description: &'static str, data: Value) -> EventType {
    EventType {
        platform: "leadshark".into(),
        provider: Provider::Generic,
        event,
        category: "engagement",
        description,
        example: json!({ "event": event, "timestamp": "2025-09-15T11:43:42.659+00:00", "data": data }),
    }
}

static CATALOGUE: LazyLock<Vec<EventType>> = LazyLock::new(|| {
    let li = "urn:li:fsd_profile:ACoAAB1x2y3z";
    vec![
        // Voyager: inbound signals.
        voyager("message_received", "inbound_signal", "New message in your LinkedIn inbox", json!({
            "userId": "charis", "conversationId": "conv123", "participantName": "Jane Smith",
            "participantUrn": li, "lastMessage": "Thanks for connecting! Would love to chat about..."
        })),
        voyager("connection_received", "inbound_signal", "New inbound connection request", json!({
            "userId": "charis", "invitationId": "inv_7311", "fromName": "Jane Smith",
            "fromUrn": li, "headline": "VP Sales at Northwind", "message": "Hi Charis, let's connect."
        })),
        voyager("post_liked", "inbound_signal", "Someone liked your post", json!({
            "userId": "charis", "postUrn": "urn:li:activity:7372270383585984512",
            "actorName": "Michael Johnson", "actorUrn": li, "reaction": "LIKE"
        })),
        voyager("post_commented", "inbound_signal", "Someone commented on your post", json!({
            "userId": "charis", "postUrn": "urn:li:activity:7372270383585984512",
            "commentUrn": "urn:li:comment:(activity:7372270383585984512,7371940875070795776)",
            "actorName": "Sarah Wilson", "actorUrn": li, "text": "Great insights! Thanks for sharing."
        })),
        voyager("comment_replied", "inbound_signal", "Someone replied to your comment", json!({
            "userId": "charis", "postUrn": "urn:li:activity:7372270383585984512",
            "commentUrn": "urn:li:comment:(activity:7372270383585984512,7371940875070795777)",
            "actorName": "Sarah Wilson", "actorUrn": li, "text": "Agreed, and the follow-up post was even better."
        })),
        // Voyager: action results.
        voyager("action_send_completed", "action_result", "Message send succeeded", json!({
            "userId": "charis", "actionId": "act_5521", "conversationId": "conv123",
            "recipientUrn": li, "message": "Thanks Jane, how about Tuesday?"
        })),
        voyager("action_send_failed", "action_result", "Message send failed", json!({
            "userId": "charis", "actionId": "act_5522", "recipientUrn": li,
            "error": "RECIPIENT_NOT_CONNECTED", "message": "Thanks Jane, how about Tuesday?"
        })),
        voyager("action_connect_completed", "action_result", "Connection request succeeded", json!({
            "userId": "charis", "actionId": "act_5523", "targetUrn": li, "note": "Enjoyed your talk."
        })),
        voyager("action_connect_failed", "action_result", "Connection request failed", json!({
            "userId": "charis", "actionId": "act_5524", "targetUrn": li,
            "error": "WEEKLY_INVITATION_LIMIT"
        })),
        voyager("action_like_completed", "action_result", "Like action succeeded", json!({
            "userId": "charis", "actionId": "act_5525", "postUrn": "urn:li:activity:7372270383585984512"
        })),
        voyager("action_comment_completed", "action_result", "Comment action succeeded", json!({
            "userId": "charis", "actionId": "act_5526", "postUrn": "urn:li:activity:7372270383585984512",
            "text": "Congratulations on the launch!"
        })),
        voyager("action_post_completed", "action_result", "Post creation succeeded", json!({
            "userId": "charis", "actionId": "act_5527", "postUrn": "urn:li:activity:7372270383585999999"
        })),
        voyager("action_visit_completed", "action_result", "Profile visit succeeded", json!({
            "userId": "charis", "actionId": "act_5528", "profileUrn": li
        })),
        // Voyager: system events.
        voyager("session_expired", "system", "LinkedIn session expired, needs re-authentication; polling pauses until the next cookie sync", json!({
            "userId": "charis", "reason": "all poll sections failed with session errors",
            "failedSections": ["messages", "invitations", "notifications"]
        })),
        voyager("job_completed", "system", "Async job finished successfully", json!({
            "userId": "charis", "jobId": "job_8812", "type": "search_export", "resultCount": 250
        })),
        voyager("job_failed", "system", "Async job failed", json!({
            "userId": "charis", "jobId": "job_8813", "type": "search_export", "error": "RATE_LIMITED"
        })),
        // ConnectSafely.
        EventType {
            platform: "connectsafely".into(),
            provider: Provider::Generic,
            event: "message.received",
            category: "inbound_signal",
            description: "Someone sent a LinkedIn message or InMail to a connected account",
            example: json!({
                "id": "evt_01JD2Q8V3N4X5Y6Z7A8B9C0D1E",
                "event": "message.received",
                "timestamp": "2026-05-02T09:14:07Z",
                "data": {
                    "accountId": "acc_4f2a",
                    "conversationId": "2-ZjM4YTk1",
                    "messageId": "msg_9b1c",
                    "isInMail": false,
                    "sender": { "name": "Jane Smith", "profileUrl": "https://www.linkedin.com/in/jane-smith", "headline": "Head of Growth" },
                    "body": "Hi! Saw your post about agents, do you have 15 minutes this week?",
                    "sentAt": "2026-05-02T09:14:05Z"
                }
            }),
        },
        // Voxagent.
        EventType {
            platform: "voxagent".into(),
            provider: Provider::Generic,
            event: "ConversationComplete",
            category: "voice",
            description: "A voice conversation ended; includes the full transcript and metadata",
            example: json!({
                "event": "ConversationComplete",
                "timestamp": "2026-04-11T16:02:41Z",
                "data": {
                    "sessionId": "sess_3c9d21",
                    "agentId": "agent_support_en",
                    "startedAt": "2026-04-11T15:58:02Z",
                    "endedAt": "2026-04-11T16:02:40Z",
                    "durationSeconds": 278,
                    "endReason": "caller_hangup",
                    "transcript": [
                        { "role": "agent", "text": "Hi, this is Ava from Acme support. How can I help?" },
                        { "role": "user", "text": "My order hasn't arrived yet." }
                    ],
                    "metadata": { "callerNumber": "+15555550123", "language": "en-US" }
                }
            }),
        },
        EventType {
            platform: "voxagent".into(),
            provider: Provider::Generic,
            event: "SessionStarted",
            category: "voice",
            description: "A new voice session began; includes the agent id and session metadata",
            example: json!({
                "event": "SessionStarted",
                "timestamp": "2026-04-11T15:58:02Z",
                "data": {
                    "sessionId": "sess_3c9d21",
                    "agentId": "agent_support_en",
                    "channel": "phone",
                    "metadata": { "callerNumber": "+15555550123", "language": "en-US" }
                }
            }),
        },
        // Kakiyo.
        kakiyo("linkedin.message.sent", "An agent sent a message to a prospect", json!({
            "agentId": "agent_67890", "campaignId": "campaign_12345", "chatId": "chat_54321",
            "prospectId": "prospect_98765", "message": "Hi Jane, I noticed your team is hiring SDRs...",
            "timestamp": "2023-06-15T10:30:00Z"
        })),
        kakiyo("linkedin.message.received", "A prospect responded to an agent", json!({
            "agentId": "agent_67890", "campaignId": "campaign_12345", "chatId": "chat_54321",
            "prospectId": "prospect_98765", "message": "Thanks for reaching out! I'd be interested in learning more...",
            "timestamp": "2023-06-15T10:30:00Z"
        })),
        kakiyo("linkedin.invitation.sent", "An agent sent a connection invitation", json!({
            "agentId": "agent_67890", "campaignId": "campaign_12345", "prospectId": "prospect_98765",
            "timestamp": "2023-06-15T10:30:00Z"
        })),
        kakiyo("linkedin.invitation.accepted", "A prospect accepted a connection invitation", json!({
            "agentId": "agent_67890", "campaignId": "campaign_12345", "prospectId": "prospect_98765",
            "timestamp": "2023-06-15T10:30:00Z"
        })),
        kakiyo("prospect.qualification.manual", "A prospect requires manual qualification review", json!({
            "agentId": "agent_67890", "campaignId": "campaign_12345", "prospectId": "prospect_98765",
            "reason": "Mentioned budget constraints", "timestamp": "2023-06-15T10:30:00Z"
        })),
        kakiyo("prospect.unqualified", "A prospect was automatically marked as unqualified", json!({
            "agentId": "agent_67890", "campaignId": "campaign_12345", "prospectId": "prospect_98765",
            "reason": "Company size outside target range", "timestamp": "2023-06-15T10:30:00Z"
        })),
        // LeadShark.
        leadshark("email.captured", "A lead provided their email", json!({
            "lead": { "name": "John Doe", "title": "Senior Marketing Manager", "email": "john.doe@example.com", "linkedin_username": "john-doe-12345" },
            "automation": { "id": "58c132e6-648c-4079-8815-77a3b2ec1adc", "name": "Q4 Marketing Guide" }
        })),
        leadshark("new.profile.visit", "Someone visited your profile", json!({
            "visitor": { "id": "ACoAAEXAMPLE987654321", "name": "Jane Smith", "title": "Product Manager at Innovation Labs", "linkedin_url": "https://linkedin.com/in/jane-smith" },
            "profile_owner": { "id": "ACoAAEXAMPLE123456789", "name": "Your Name" }
        })),
        leadshark("new.like", "Someone liked your post (requires \"Require like\" on the automation)", json!({
            "lead": { "name": "Michael Johnson", "title": "Sales Director", "linkedin_url": "https://linkedin.com/in/michael-johnson", "connection_status": "Connected" },
            "automation": { "id": "uuid", "name": "Engagement Campaign" },
            "post_id": "urn:li:activity:7372270383585984512"
        })),
        // Standard Webhooks senders (Svix and others): {"type", "timestamp", "data"}.
        preset(Provider::Standard, "user.created", "A Standard Webhooks sender's example event", json!({
            "type": "user.created", "timestamp": "2026-11-24T10:00:00Z",
            "data": { "id": "user_Ud3Zn2Nn", "email": "jane@example.com", "name": "Jane Smith" }
        })),
        preset(Provider::Standard, "invoice.paid", "A Standard Webhooks sender's billing event", json!({
            "type": "invoice.paid", "timestamp": "2026-11-24T10:00:00Z",
            "data": { "id": "inv_9f3k", "amount": 4200, "currency": "usd", "customer": "cus_8a2" }
        })),
        // GitHub (event type from X-GitHub-Event).
        preset(Provider::Github, "push", "Commits were pushed to a repository", json!({
            "ref": "refs/heads/main", "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "repository": { "id": 1296269, "full_name": "octocat/Hello-World" },
            "pusher": { "name": "octocat" },
            "commits": [{ "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Fix the docs", "author": { "name": "Monalisa Octocat" } }]
        })),
        preset(Provider::Github, "issues", "An issue was opened, edited, closed, ...", json!({
            "action": "opened",
            "issue": { "number": 1347, "title": "Found a bug", "body": "I'm having a problem with this.", "user": { "login": "octocat" } },
            "repository": { "id": 1296269, "full_name": "octocat/Hello-World" }
        })),
        preset(Provider::Github, "pull_request", "A pull request was opened, synchronised, merged, ...", json!({
            "action": "opened", "number": 2,
            "pull_request": { "title": "Update the README", "head": { "ref": "docs" }, "base": { "ref": "main" }, "user": { "login": "octocat" } },
            "repository": { "id": 1296269, "full_name": "octocat/Hello-World" }
        })),
        // Stripe (event type in the body's `type`).
        preset(Provider::Stripe, "payment_intent.succeeded", "A payment succeeded", json!({
            "id": "evt_3Nq1", "object": "event", "api_version": "2024-06-20", "created": 1732442400,
            "type": "payment_intent.succeeded", "livemode": false,
            "data": { "object": { "id": "pi_3Nq1", "object": "payment_intent", "amount": 4200, "currency": "usd", "status": "succeeded" } }
        })),
        preset(Provider::Stripe, "checkout.session.completed", "A Checkout session completed", json!({
            "id": "evt_1Sess", "object": "event", "created": 1732442400, "type": "checkout.session.completed", "livemode": false,
            "data": { "object": { "id": "cs_test_a1", "object": "checkout.session", "amount_total": 4200, "customer_email": "jane@example.com", "payment_status": "paid" } }
        })),
        preset(Provider::Stripe, "invoice.payment_failed", "An invoice payment failed", json!({
            "id": "evt_1Inv", "object": "event", "created": 1732442400, "type": "invoice.payment_failed", "livemode": false,
            "data": { "object": { "id": "in_1Inv", "object": "invoice", "amount_due": 4200, "attempt_count": 2, "customer": "cus_8a2" } }
        })),
        // Slack Events API (event type from event.type).
        preset(Provider::Slack, "app_mention", "Someone mentioned the app in a channel", slack_event(json!({
            "type": "app_mention", "user": "U061F7AUR", "text": "<@U0LAN0Z89> is it everything a river should be?",
            "ts": "1515449522.000016", "channel": "C123ABC456"
        }))),
        preset(Provider::Slack, "message", "A message was posted in a channel the app is in", slack_event(json!({
            "type": "message", "channel": "C123ABC456", "user": "U123ABC456", "text": "Live long and prospect.", "ts": "1355517523.000005"
        }))),
        // Shopify (event type from X-Shopify-Topic).
        preset(Provider::Shopify, "orders/create", "An order was created", json!({
            "id": 820982911946154508u64, "email": "jon@example.com", "total_price": "42.00", "currency": "USD",
            "line_items": [{ "title": "IPod Nano - 8GB", "quantity": 1, "price": "42.00" }]
        })),
        preset(Provider::Shopify, "customers/create", "A customer was created", json!({
            "id": 706405506930370084u64, "email": "bob@example.com", "first_name": "Bob", "last_name": "Biller"
        })),
        leadshark("new.comment", "Someone commented on your post", json!({
            "lead": { "name": "Sarah Wilson", "title": "Content Marketing Specialist", "linkedin_url": "https://linkedin.com/in/sarah-wilson", "connection_status": "2nd Connection" },
            "comment": { "id": "7371940875070795776", "text": "Great insights! Thanks for sharing.", "created_at": "2025-09-11T16:21:08.656Z" },
            "automation": { "id": "uuid", "name": "Content Engagement" }
        })),
        // webhook-mcp itself: operational events about the agent's own outbound webhooks.
        operational("webhook_mcp.webhook.disabled", "An outbound webhook was disabled by the delivery policy (410 Gone, or failing for --disable-after)", json!({
            "webhook_id": "wh_outbound", "url": "https://example.com/hook", "reason": "the target answered 410 Gone",
            "delivery_id": "del_1", "hint": "Fix the target, then update_webhook {enabled: true} and redeliver the failed messages."
        })),
        operational("webhook_mcp.delivery.failed", "A delivery failed for good: its last attempt failed and no retry follows", json!({
            "webhook_id": "wh_outbound", "url": "https://example.com/hook", "event": "order.paid", "message_id": "msg_1",
            "delivery_id": "del_7", "attempts": 8, "status_code": 500, "error": "HTTP 500",
            "hint": "No retry follows. query_deliveries shows every attempt; redeliver sends it again."
        })),
        operational("webhook_mcp.secret.expired", "A webhook's previous secret stopped verifying: the grace period of its last rotation ended", json!({
            "webhook_id": "wh_inbound", "expired_at": "2026-11-26T12:00:00.000Z",
            "hint": "The secret this webhook had before its last rotation no longer verifies: a sender still signing with it is now refused (401)."
        })),
    ]
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_seed_platform() {
        let count = |p: &str| list(Some(p)).len();
        assert_eq!(count("voyager"), 16);
        assert_eq!(count("connectsafely"), 1);
        assert_eq!(count("voxagent"), 2);
        assert_eq!(count("kakiyo"), 6);
        assert_eq!(count("leadshark"), 4);
        for p in ["standard", "github", "stripe", "slack", "shopify"] {
            assert!(count(p) >= 2, "{p} has examples");
        }
        // 41 from the seed platforms and 3 operational events of webhook-mcp itself.
        assert_eq!(count("webhook-mcp"), 3);
        assert_eq!(list(None).len(), 44);
        assert_eq!(
            count("none"),
            0,
            "operational events belong to no signature preset"
        );
        // The seed senders name the type in the body.
        for t in list(Some("generic"))
            .into_iter()
            .chain(list(Some("kakiyo")))
        {
            assert_eq!(
                t.example["event"], t.event,
                "{} example names its type",
                t.event
            );
        }
    }

    #[test]
    fn find_prefers_the_scheme() {
        assert_eq!(
            find("linkedin.message.received", Provider::Kakiyo)
                .unwrap()
                .platform,
            "kakiyo"
        );
        assert_eq!(
            find("message_received", Provider::Kakiyo).unwrap().platform,
            "voyager"
        );
        assert!(find("nope", Provider::Generic).is_none());
    }
}
