//! Standard Webhooks signing (<https://www.standardwebhooks.com>): the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers, the signature being
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")). Pure, so the notifier and
//! the webhook connector can share it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a signed timestamp may be from the receiver's clock (the scheme's five minutes).
pub const TOLERANCE_SECS: i64 = 300;

/// A signing secret that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `whsec_` followed by something that is not base64.
    #[error("the webhook secret starts with `whsec_` but the rest is not base64")]
    NotBase64,
    /// Too short to be a secret.
    #[error("the webhook secret must be at least 16 bytes")]
    TooShort,
}

/// The key bytes of a secret: `whsec_<base64>` (the scheme's form) decoded, anything else as is.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SecretError> {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < 16 {
        return Err(SecretError::TooShort);
    }
    Ok(key)
}

/// The `webhook-signature` header value for one message.
pub fn sign(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `signature_header` (space-separated `v1,<sig>` entries) carries a valid signature of
/// the message, signed within [`TOLERANCE_SECS`] of `now_secs`.
pub fn verify(
    key: &[u8],
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
    signature_header: &str,
    now_secs: i64,
) -> bool {
    if (now_secs - timestamp_secs).abs() > TOLERANCE_SECS {
        return false;
    }
    let Some(expected) = sign(key, msg_id, timestamp_secs, body)
        .strip_prefix("v1,")
        .and_then(|b| STANDARD.decode(b).ok())
    else {
        return false;
    };
    signature_header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
            .is_some_and(|given| {
                // Constant time: compare every byte whatever the first difference.
                given.len() == expected.len()
                    && given
                        .iter()
                        .zip(&expected)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The test vector of the Standard Webhooks reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bad {sig}"),
            1614265330 + 10
        ));
        assert!(!verify(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &sig,
            1614265330 + 301
        ));
        assert!(!verify(
            &key,
            "msg_other",
            1614265330,
            body,
            &sig,
            1614265330
        ));
        assert_eq!(secret_key("whsec_%%%"), Err(SecretError::NotBase64));
        assert_eq!(secret_key("short"), Err(SecretError::TooShort));
    }
}
