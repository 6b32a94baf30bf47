//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the bytes of a
//! `whsec_<base64>` secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret, checked at load.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    text: String,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (the prefix is optional, as receivers' SDKs allow).
    pub fn parse(text: &str) -> Result<WebhookSecret, String> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| format!("not base64 after {SECRET_PREFIX}: {e}"))?;
        if key.len() < 16 {
            return Err("the secret must hold at least 16 bytes".into());
        }
        Ok(WebhookSecret {
            key,
            text: format!("{SECRET_PREFIX}{encoded}"),
        })
    }

    /// A new random secret (32 bytes).
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }

    /// The secret as configured (`whsec_…`), for the operator to share.
    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    /// Checks a `webhook-signature` header (several space-separated
    /// signatures may be present), in constant time.
    pub fn verify(&self, id: &str, timestamp: i64, body: &str, header: &str) -> bool {
        header.split(' ').any(|candidate| {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                return false;
            };
            let Ok(given) = STANDARD.decode(encoded) else {
                return false;
            };
            let mac = self.hmac(id, timestamp, body);
            mac.verify_slice(&given).is_ok()
        })
    }

    fn hmac(&self, id: &str, timestamp: i64, body: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        mac
    }

    fn mac(&self, id: &str, timestamp: i64, body: &str) -> Vec<u8> {
        self.hmac(id, timestamp, body)
            .finalize()
            .into_bytes()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's examples.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &signature));
        assert!(!secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &signature));
        assert!(!secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{}", &signature));
    }

    #[test]
    fn generated_secrets_parse_and_bad_ones_do_not() {
        let text = WebhookSecret::generate();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap().as_text(), text);
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
    }
}
