//! Sends one token request with bounded retries of transient failures (connect errors,
//! timeouts, 408/429/5xx) inside the caller's deadline.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;

use super::error::{AuthError, TokenService};
use super::transport::{AuthRequest, AuthResponse, AuthTransport, TransportError, endpoint_of};

/// Retry tuning for token requests.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total (first try included).
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, full jitter.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff (and of an honoured `Retry-After`).
    pub max_backoff: Duration,
    /// Upper bound of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(20),
        }
    }
}

/// What the last failed attempt looked like, to build the final error.
enum Last {
    Status(u16, Option<Duration>),
    Transport(TransportError),
}

/// Whether `status` is worth retrying for `service`.
fn retryable(service: TokenService, status: u16) -> bool {
    if service == TokenService::Nmi {
        // NMI's non-200 answers are decisions about the pod, reported verbatim (§5.5).
        return false;
    }
    match status {
        408 | 429 | 500 | 502 | 503 | 504 => true,
        // IMDS answers 410 while it is being updated (documented by Azure for IMDS).
        410 => service == TokenService::Imds,
        _ => false,
    }
}

/// Sends the request built by `build` (rebuilt per attempt because the form is moved),
/// retrying transient failures. Returns the first non-retryable response.
pub(crate) async fn send_with_retry(
    transport: &dyn AuthTransport,
    service: TokenService,
    policy: &RetryPolicy,
    deadline: Instant,
    unreachable_hint: Option<&'static str>,
    build: impl Fn() -> AuthRequest,
) -> Result<AuthResponse, AuthError> {
    let mut attempt: u32 = 0;
    let mut last: Option<Last>;
    let endpoint = endpoint_of(&build().url);
    loop {
        attempt += 1;
        let now = Instant::now();
        if now >= deadline {
            return Err(AuthError::DeadlineExceeded { service });
        }
        let timeout = policy.attempt_timeout.min(deadline - now);
        let advised;
        match transport.send(build(), timeout).await {
            Ok(resp) if retryable(service, resp.status) => {
                advised = resp.retry_after;
                tracing::debug!(
                    service = service.name(),
                    status = resp.status,
                    attempt,
                    "token request will be retried"
                );
                last = Some(Last::Status(resp.status, resp.retry_after));
            }
            Ok(resp) => return Ok(resp),
            Err(e) => {
                advised = None;
                tracing::debug!(service = service.name(), error = %e, attempt, "token request failed");
                last = Some(Last::Transport(e));
            }
        }
        let wait = advised
            .unwrap_or_else(|| backoff(policy, attempt))
            .min(policy.max_backoff);
        let out_of_budget = attempt >= policy.max_attempts || Instant::now() + wait >= deadline;
        if out_of_budget {
            return Err(final_error(service, last, endpoint, unreachable_hint));
        }
        tokio::time::sleep(wait).await;
    }
}

fn final_error(
    service: TokenService,
    last: Option<Last>,
    endpoint: String,
    hint: Option<&'static str>,
) -> AuthError {
    match last {
        Some(Last::Status(429, retry_after)) => AuthError::Throttled {
            service,
            retry_after,
        },
        Some(Last::Status(status, _)) => AuthError::ServerError { service, status },
        Some(Last::Transport(TransportError::Timeout)) => AuthError::DeadlineExceeded { service },
        Some(Last::Transport(e)) => AuthError::Unreachable {
            service,
            endpoint,
            detail: e.to_string(),
            hint,
        },
        None => AuthError::DeadlineExceeded { service },
    }
}

/// Exponential backoff with full jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let cap = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(policy.max_backoff);
    // RandomState is randomly seeded per instance: good enough for jitter, no extra crate.
    let r = RandomState::new().hash_one(Instant::now());
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(r % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        for attempt in 1..30 {
            assert!(backoff(&p, attempt) <= p.max_backoff);
        }
        assert!(backoff(&p, 1) < Duration::from_millis(250));
    }

    #[test]
    fn retryable_statuses() {
        assert!(retryable(TokenService::EntraId, 429));
        assert!(retryable(TokenService::EntraId, 503));
        assert!(!retryable(TokenService::EntraId, 400));
        assert!(!retryable(TokenService::EntraId, 410));
        assert!(retryable(TokenService::Imds, 410));
        assert!(!retryable(TokenService::Nmi, 404));
    }
}
