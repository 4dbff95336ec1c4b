//! API errors: `{ "code": "...", "message": "..." }` with the status from
//! the core error-code table.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use videdit_core::ErrorCode;

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// Stable, machine-readable code (`video_not_found`, `forbidden`, …).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// An error response. Every variant carries an [`ErrorBody`].
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Payment required: a plan quota is used up.
    #[oai(status = 402)]
    PaymentRequired(Json<ErrorBody>),
    /// The role does not allow this, or a signed URL is invalid or expired.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource in this organisation.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource's state does not allow this.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Understood but refused (bad media, idempotency key reused, …).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Slow down.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>),
    /// A bug; the request id in the logs tells more.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// Not available on this server (billing without Stripe settings).
    #[oai(status = 501)]
    NotImplemented(Json<ErrorBody>),
    /// A dependency is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
    /// A dependency timed out; retry later.
    #[oai(status = 504)]
    GatewayTimeout(Json<ErrorBody>),
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let body = Json(ErrorBody { code: code.as_str().to_owned(), message: message.into() });
        match code.http_status() {
            400 => Self::BadRequest(body),
            401 => Self::Unauthorized(body),
            402 => Self::PaymentRequired(body),
            403 => Self::Forbidden(body),
            404 => Self::NotFound(body),
            409 => Self::Conflict(body),
            413 => Self::PayloadTooLarge(body),
            422 => Self::Unprocessable(body),
            429 => Self::TooManyRequests(body),
            501 => Self::NotImplemented(body),
            503 => Self::Unavailable(body),
            504 => Self::GatewayTimeout(body),
            _ => Self::Internal(body),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// The body.
    pub fn body(&self) -> &ErrorBody {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::PaymentRequired(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::Unprocessable(b)
            | Self::TooManyRequests(b)
            | Self::Internal(b)
            | Self::NotImplemented(b)
            | Self::Unavailable(b)
            | Self::GatewayTimeout(b) => &b.0,
        }
    }
}

fn bad_request(err: poem::Error) -> ApiError {
    ApiError::invalid(err.to_string())
}

impl ApiError {
    /// A failure with its code: a client's mistake keeps its message; the
    /// details of a server-side failure go to the log, not the client.
    fn from_failure(code: ErrorCode, message: &str, error: &dyn std::fmt::Display) -> Self {
        // These messages are ours, written for the client.
        let told = matches!(
            code,
            ErrorCode::BillingNotConfigured
                | ErrorCode::PaymentProviderUnavailable
                | ErrorCode::PlatformNotConfigured
                | ErrorCode::PlatformUnavailable
        );
        if !told && (code == ErrorCode::Internal || code.http_status() >= 500) {
            tracing::error!(error = %error, code = %code, "request failed");
            return Self::new(code, "the server could not complete the request; it has been logged");
        }
        Self::new(code, message)
    }
}

impl From<videdit_core::Error> for ApiError {
    fn from(e: videdit_core::Error) -> Self {
        Self::from_failure(e.code(), &e.to_string(), &e)
    }
}

impl From<videdit_service::Error> for ApiError {
    fn from(e: videdit_service::Error) -> Self {
        Self::from_failure(e.code(), e.message(), &e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        videdit_core::Error::from(e).into()
    }
}

/// Builds a plain poem response for errors raised outside typed endpoints
/// (auth, routing, signed storage URLs).
pub fn error_response(code: ErrorCode, message: &str) -> poem::Response {
    let body = serde_json::to_vec(&ErrorBody { code: code.as_str().to_owned(), message: message.to_owned() })
        .expect("error body serialises");
    poem::Response::builder()
        .status(
            poem::http::StatusCode::from_u16(code.http_status())
                .unwrap_or(poem::http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .content_type("application/json; charset=utf-8")
        .body(body)
}

/// Result of an endpoint.
pub type ApiResult<T> = Result<T, ApiError>;
