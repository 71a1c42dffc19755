//! The one place where application errors become HTTP responses.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::wire::{ErrorEnvelope, ErrorInfo, ErrorStatus};
use crate::app::{AppError, ErrorKind};

pub const ERROR_DOMAIN: &str = "www.ory.com/talos";
const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

pub fn envelope(err: &AppError) -> ErrorEnvelope {
    let metadata: Map<String, Value> = err
        .metadata
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    ErrorEnvelope {
        error: ErrorStatus {
            code: err.kind.http_status(),
            message: err.message.clone(),
            status: err.kind.grpc_status().to_string(),
            details: vec![ErrorInfo {
                type_url: ERROR_INFO_TYPE.to_string(),
                reason: err.kind.id().to_ascii_uppercase(),
                domain: ERROR_DOMAIN.to_string(),
                metadata,
            }],
        },
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.kind.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(envelope(&self))).into_response();
        if matches!(
            self.kind,
            ErrorKind::Unavailable | ErrorKind::TooManyRequests
        ) {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

pub fn not_found() -> AppError {
    AppError::new(ErrorKind::NotFound, "resource not found")
}
