//! Set-up instructions per provider preset: where a platform wants the receive URL and secret.
//! Product knowledge for whoever sets the webhook up (a person at the CLI, or an agent).

use super::Service;
use crate::model::{Provider, Webhook};

impl Service {
    /// Where the receive URL and secret go at the sending platform: for the person (or agent)
    /// who pastes them there.
    pub(super) fn setup_instructions(&self, w: &Webhook) -> String {
        let url = self.receive_url(&w.id);
        let mut hint = match w.provider {
            Provider::Generic => format!(
                "Give the sender the URL {url} and this secret. Voyager: POST /api/webhooks with \
                 {{\"url\": \"{url}\", \"secret\": \"<secret>\", \"events\": [...]}}. LeadShark: Dashboard \
                 Settings, webhook endpoint. Voxagent (Webhooks > + Create Webhook) and ConnectSafely \
                 (Webhooks > Create Webhook) generate their own secret: paste the URL there, then call \
                 rotate_secret with id={id} and secret=<their secret>. Voyager polls every 5 minutes and \
                 its first poll after a session sync only takes a snapshot (no events for what already \
                 existed); a session_expired event means its LinkedIn cookies need re-syncing.",
                id = w.id
            ),
            Provider::Kakiyo => format!(
                "In Kakiyo, register {url} as a webhook endpoint with the events you want (or *), using this secret; Kakiyo signs with X-Kakiyo-Signature."
            ),
            Provider::Standard => format!(
                "At the Standard Webhooks / Svix sender, add the endpoint {url}; if it shows its own whsec_ signing secret, call rotate_secret with id={} and secret=<that secret>.",
                w.id
            ),
            Provider::Github => format!(
                "GitHub: repository or organisation Settings > Webhooks > Add webhook: Payload URL {url}, Content type application/json, Secret = this secret."
            ),
            Provider::Stripe => format!(
                "Stripe: Developers > Webhooks > Add endpoint {url}; then reveal its signing secret (whsec_...) and call rotate_secret with id={} and secret=<that secret>.",
                w.id
            ),
            Provider::Slack => format!(
                "Slack: app settings > Event Subscriptions > Request URL {url} (the url_verification challenge is answered automatically); call rotate_secret with id={} and secret=<Basic Information > Signing Secret>.",
                w.id
            ),
            Provider::Shopify => format!(
                "Shopify: Settings > Notifications > Webhooks (or the app's webhook subscription) with URL {url}, JSON format; call rotate_secret with id={} and secret=<the app's client secret or the shown signing key>.",
                w.id
            ),
            Provider::None => format!(
                "Unsigned: anyone who knows {url} can post events to it. Keep the URL secret, or prefer a signed scheme."
            ),
        };
        if self.settings.public_url.contains("127.0.0.1")
            || self.settings.public_url.contains("localhost")
        {
            hint.push_str(" The receive URL is local: a provider on the internet needs a tunnel (ngrok, cloudflared) and --public-url set to it.");
        }
        hint
    }
}
