//! `GET /api/v1/webui`: what the page needs to know of the server, in
//! Mailpit's shape, plus sokkel's own `SMTPAddresses` (where to send mail,
//! for the page's empty state).
//!
//! ```text
//! GET /api/v1/webui → {"Label": "", "MessageRelay": {"Enabled": true, "SMTPServer": "…",
//!                      "AllowedRecipients": "…", …}, "ChaosEnabled": false, …,
//!                      "SMTPAddresses": ["127.0.0.1:1025"], "Version": "…"}
//! ```
//!
//! No secret is in it: the relay shows as its address and TLS mode, never its
//! login.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct WebUiJson {
    label: String,
    message_relay: MessageRelayJson,
    spam_assassin: bool,
    chaos_enabled: bool,
    duplicates_ignored: bool,
    hide_delete_all_button: bool,
    // sokkel's own.
    #[serde(rename = "SMTPAddresses")]
    smtp_addresses: Vec<String>,
    version: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MessageRelayJson {
    enabled: bool,
    #[serde(rename = "SMTPServer")]
    smtp_server: String,
    return_path: String,
    allowed_recipients: String,
    blocked_recipients: String,
    override_from: String,
    #[serde(rename = "PreserveMessageIDs")]
    preserve_message_ids: bool,
}

/// `GET /api/v1/webui`.
pub(crate) async fn webui(State(state): State<AppState>) -> Response {
    let config = state.config();
    let relay = config.release.as_ref().map(|relay| relay.settings());
    let message_relay = MessageRelayJson {
        enabled: relay.is_some(),
        smtp_server: relay.as_ref().map(|r| r.server.clone()).unwrap_or_default(),
        return_path: String::new(),
        allowed_recipients: relay
            .as_ref()
            .and_then(|r| r.allowed.clone())
            .unwrap_or_default(),
        blocked_recipients: relay
            .as_ref()
            .and_then(|r| r.blocked.clone())
            .unwrap_or_default(),
        override_from: relay
            .as_ref()
            .and_then(|r| r.override_from.clone())
            .unwrap_or_default(),
        // A release sends the stored bytes unchanged.
        preserve_message_ids: true,
    };
    Json(WebUiJson {
        label: String::new(),
        message_relay,
        spam_assassin: false,
        chaos_enabled: config.chaos.is_some(),
        duplicates_ignored: false,
        hide_delete_all_button: false,
        smtp_addresses: config.smtp_addresses.clone(),
        version: config.version.clone(),
    })
    .into_response()
}
