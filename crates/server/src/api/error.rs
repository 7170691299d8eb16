//! The API's errors: `{"error": {"code", "message"}}` (plus `problems` for invalid inputs)
//! with the status that says what went wrong, and how engine refusals map onto them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `bad_request`, `conflict`,
    /// `invalid_inputs`, `payload_too_large`, `rate_limited`, `timeout`, `internal`...
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// Every problem, one per entry (invalid inputs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The sentence.
    pub message: String,
    /// Every problem (invalid inputs).
    pub problems: Vec<String>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 403: the token's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 401: no token, or one that is not configured.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 500: the server failed (the message is logged, the answer says only that).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not answer; see its log",
        )
    }
}

impl From<tenure_engine::api::Error> for ApiError {
    fn from(e: tenure_engine::api::Error) -> Self {
        use tenure_engine::api::Error as E;
        match e {
            E::NoRun(id) => ApiError::not_found(format!("no run `{id}`")),
            E::Inputs(problems) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_inputs",
                message: format!("the inputs do not fit the runbook: {}", problems.join("; ")),
                problems,
            },
            E::Tenant(m) | E::Template(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot_start", m)
            }
            E::Refused(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m.to_string()),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            E::BadInput(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_input", m),
            E::Store(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                problems: self.problems,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The stable code of an error status (for answers made outside a handler).
pub fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// A JSON error body for `status` with `message`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code_of(status), "message": message}})),
    )
        .into_response()
}
