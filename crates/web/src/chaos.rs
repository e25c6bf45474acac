//! `GET` and `PUT /api/v1/chaos`: the SMTP server's fault triggers, in Mailpit's
//! shape, changed while it runs.
//!
//! ```text
//! {"Sender":         {"ErrorCode": 451, "Probability": 0},    Mailpit's three
//!  "Recipient":      {"ErrorCode": 451, "Probability": 50},   triggers
//!  "Authentication": {"ErrorCode": 535, "Probability": 0},
//!  "Disconnect":     {"Stage": "rcpt", "Probability": 0},     sokkel's additions
//!  "SlowLink":       {"BytesPerSecond": 0}}                   (0: full speed)
//! ```
//!
//! As in Mailpit, PUT replaces everything: a trigger left out goes back to its
//! default code at probability 0, `{}` switches everything off, an `ErrorCode` of
//! 0 or none means the default, and field names match without regard to case
//! (Mailpit decodes with Go's encoding/json, which does so). Both answer 400
//! `Chaos is not enabled` when the server runs without `--enable-chaos`, and a
//! bad value is a 400 naming it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sokkel_net::chaos::{
    Chaos, ChaosError, Disconnect, Point, Stage, Trigger, Triggers, check_probability,
};

use crate::{ApiError, AppState};

/// `{"ErrorCode": 451, "Probability": 5}`; a missing field is 0.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TriggerJson {
    error_code: i64,
    probability: i64,
}

/// `{"Stage": "rcpt", "Probability": 30}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectJson {
    stage: Option<String>,
    probability: i64,
}

/// `{"BytesPerSecond": 2000}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SlowLinkJson {
    bytes_per_second: i64,
}

/// Mailpit's `ChaosTriggers` with sokkel's `Disconnect` and `SlowLink`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TriggersJson {
    sender: Option<TriggerJson>,
    recipient: Option<TriggerJson>,
    authentication: Option<TriggerJson>,
    disconnect: Option<DisconnectJson>,
    slow_link: Option<SlowLinkJson>,
}

impl TriggersJson {
    fn from_triggers(triggers: &Triggers) -> Self {
        let trigger = |point| {
            let Trigger {
                error_code,
                probability,
            } = triggers.trigger(point);
            Some(TriggerJson {
                error_code: error_code.into(),
                probability: probability.into(),
            })
        };
        TriggersJson {
            sender: trigger(Point::Sender),
            recipient: trigger(Point::Recipient),
            authentication: trigger(Point::Authentication),
            disconnect: Some(DisconnectJson {
                stage: Some(triggers.disconnect.stage.name().to_owned()),
                probability: triggers.disconnect.probability.into(),
            }),
            slow_link: Some(SlowLinkJson {
                bytes_per_second: triggers.slow_link.map_or(0, |rate| rate.get().into()),
            }),
        }
    }

    /// The triggers this asks for, missing ones off.
    fn into_triggers(self) -> Result<Triggers, ChaosError> {
        let trigger = |point: Point, json: Option<TriggerJson>| {
            let json = json.unwrap_or_default();
            let code = match json.error_code {
                0 => point.default_code().into(),
                code => code,
            };
            let probability = check_probability(point.name(), json.probability)?;
            Trigger::checked(point, code, probability)
        };
        let disconnect = match self.disconnect {
            None => Disconnect::default(),
            Some(json) => Disconnect {
                stage: json
                    .stage
                    .as_deref()
                    .map_or(Ok(Stage::default()), str::parse)?,
                probability: check_probability("Disconnect", json.probability)?,
            },
        };
        let rate = self.slow_link.map_or(0, |json| json.bytes_per_second);
        let rate = u32::try_from(rate).map_err(|_| ChaosError::Rate(rate))?;
        Ok(Triggers {
            sender: trigger(Point::Sender, self.sender)?,
            recipient: trigger(Point::Recipient, self.recipient)?,
            authentication: trigger(Point::Authentication, self.authentication)?,
            disconnect,
            slow_link: std::num::NonZeroU32::new(rate),
        })
    }
}

/// Every field name of the body, as sokkel writes them.
const FIELDS: &[&str] = &[
    "Sender",
    "Recipient",
    "Authentication",
    "Disconnect",
    "SlowLink",
    "ErrorCode",
    "Probability",
    "Stage",
    "BytesPerSecond",
];

/// Renames object keys that match a field name in another case (`recipient`,
/// `errorCode`) to the field's own spelling, at every depth (serde_json bounds
/// the depth of what it parses).
fn canonical_keys(value: &mut Value) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, mut inner) in std::mem::take(map) {
        canonical_keys(&mut inner);
        let key = match FIELDS.iter().find(|field| field.eq_ignore_ascii_case(&key)) {
            Some(field) => (*field).to_owned(),
            None => key,
        };
        map.insert(key, inner);
    }
}

/// The chaos handle, or Mailpit's answer when chaos is off.
fn chaos(state: &AppState) -> Result<&Chaos, ApiError> {
    state
        .config()
        .chaos
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("Chaos is not enabled".into()))
}

/// `GET /api/v1/chaos`: the triggers now.
pub(crate) async fn get(State(state): State<AppState>) -> Result<Response, ApiError> {
    let triggers = chaos(&state)?.triggers();
    Ok(Json(TriggersJson::from_triggers(&triggers)).into_response())
}

/// `PUT /api/v1/chaos`: replaces the triggers and answers them as `GET` does.
pub(crate) async fn set(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let chaos = chaos(&state)?;
    let bad_body = |error: serde_json::Error| {
        ApiError::BadRequest(format!(
            r#"the body must be JSON like {{"Recipient": {{"ErrorCode": 451, "Probability": 50}}}}: {error}"#
        ))
    };
    let mut body: Value = serde_json::from_slice(&body).map_err(bad_body)?;
    canonical_keys(&mut body);
    let json: TriggersJson = serde_json::from_value(body).map_err(bad_body)?;
    let triggers = json
        .into_triggers()
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    chaos.set(triggers);
    tracing::info!(%triggers, "chaos triggers changed through the API");
    Ok(Json(TriggersJson::from_triggers(&triggers)).into_response())
}
