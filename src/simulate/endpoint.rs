//! The endpoints of the simulated API: names, paths, methods and documented limits.

use std::time::Duration;

use http::Method;

use crate::ratelimit::RateLimit;

/// One endpoint of the simulated API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Model,
    GenerateKey,
    CheckCredit,
    GetXmrWallet,
    ConfirmXmrPayment,
    SendMail,
    Inference,
}

/// The number of endpoints, for per-endpoint arrays.
pub(crate) const ENDPOINT_COUNT: usize = 7;

impl Endpoint {
    /// Every endpoint, in the order of [`Endpoint::index`].
    pub(crate) const ALL: [Endpoint; ENDPOINT_COUNT] = [
        Endpoint::Model,
        Endpoint::GenerateKey,
        Endpoint::CheckCredit,
        Endpoint::GetXmrWallet,
        Endpoint::ConfirmXmrPayment,
        Endpoint::SendMail,
        Endpoint::Inference,
    ];

    /// Position in [`Endpoint::ALL`] and in per-endpoint arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The name used in scenarios and in the stats.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Model => "model",
            Endpoint::GenerateKey => "generate-key",
            Endpoint::CheckCredit => "check-credit",
            Endpoint::GetXmrWallet => "get-xmr-wallet",
            Endpoint::ConfirmXmrPayment => "confirm-xmr-payment",
            Endpoint::SendMail => "send-mail",
            Endpoint::Inference => "inference",
        }
    }

    /// The path relative to the base URL, without a leading slash.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Model => "frontend-api/model/",
            Endpoint::GenerateKey => "frontend-api/generate-key",
            Endpoint::CheckCredit => "frontend-api/check-credit",
            Endpoint::GetXmrWallet => "frontend-api/get-xmr-wallet",
            Endpoint::ConfirmXmrPayment => "frontend-api/confirm-xmr-payment",
            Endpoint::SendMail => "frontend-api/send-mail",
            Endpoint::Inference => "v1/completions",
        }
    }

    /// The only method the endpoint accepts.
    pub(crate) fn method(self) -> Method {
        match self {
            Endpoint::Model | Endpoint::CheckCredit | Endpoint::GetXmrWallet => Method::GET,
            Endpoint::GenerateKey
            | Endpoint::ConfirmXmrPayment
            | Endpoint::SendMail
            | Endpoint::Inference => Method::POST,
        }
    }

    /// The limit from the API's rate-limit table: 20/s for the model list, 100/day or
    /// 100/hour for the account endpoints, 1/day for send-mail, and none for inference.
    pub(crate) fn documented_limit(self) -> Option<RateLimit> {
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        let (limit, window) = match self {
            Endpoint::Model => (20, Duration::from_secs(1)),
            Endpoint::CheckCredit => (100, HOUR),
            Endpoint::GenerateKey | Endpoint::GetXmrWallet | Endpoint::ConfirmXmrPayment => {
                (100, DAY)
            }
            Endpoint::SendMail => (1, DAY),
            Endpoint::Inference => return None,
        };
        Some(RateLimit { limit, window })
    }
}
