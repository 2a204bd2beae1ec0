//! Slack request signing (v0): the first thing every Slack route does.
//!
//! `X-Slack-Signature` must equal `v0=` + hex(HMAC-SHA256(signing secret,
//! `v0:{X-Slack-Request-Timestamp}:{raw body}`)), compared in constant time, and the
//! timestamp must be within five minutes of now, so a captured request cannot be replayed.
//! The clock is a parameter so that Slack's documented 2018 example is a unit test.
//!
//! slack-morphism has a verifier of the same scheme, but its clock is private; ours is
//! cross-checked against it in the tests so the two cannot drift apart.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The largest accepted distance between the request's timestamp and now, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A signing header is absent or not text.
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp")]
    MissingHeaders,
    /// The timestamp is not a number, or too far from now.
    #[error("the request timestamp is stale, from the future, or malformed")]
    BadTimestamp,
    /// The signature does not match.
    #[error("the request signature does not match")]
    BadSignature,
}

/// Verifies Slack's request signatures with one signing secret.
#[derive(Clone)]
pub struct Verifier {
    secret: SecretString,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// A verifier for this signing secret.
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    /// Checks a request against the current time.
    pub fn verify(&self, signature: Option<&str>, timestamp: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
        self.verify_at(signature, timestamp, body, unix_now())
    }

    /// Checks a request as if now were `now` (Unix seconds).
    pub fn verify_at(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let (signature, timestamp) = check_headers_at(signature, timestamp, now)?;
        let expected = self.sign(timestamp, body);
        if expected.as_bytes().ct_eq(signature.as_bytes()).into() { Ok(()) } else { Err(VerifyError::BadSignature) }
    }

    /// The `X-Slack-Signature` value Slack would send for this timestamp and body.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Checks what can be checked before the body is read: both headers present, the
/// signature shaped like `v0=` and 64 lowercase hex digits (what [`Verifier::sign`]
/// produces, so nothing else can match), and the timestamp within five minutes of now.
/// Returns the trimmed signature and timestamp.
pub fn check_headers<'a>(
    signature: Option<&'a str>,
    timestamp: Option<&'a str>,
) -> Result<(&'a str, &'a str), VerifyError> {
    check_headers_at(signature, timestamp, unix_now())
}

/// [`check_headers`] as if now were `now` (Unix seconds).
pub fn check_headers_at<'a>(
    signature: Option<&'a str>,
    timestamp: Option<&'a str>,
    now: i64,
) -> Result<(&'a str, &'a str), VerifyError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(VerifyError::MissingHeaders);
    };
    let (signature, timestamp) = (signature.trim(), timestamp.trim());
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    // `abs_diff` cannot overflow, whatever a client puts in the header.
    if now.abs_diff(ts) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(VerifyError::BadTimestamp);
    }
    let well_formed = signature
        .strip_prefix("v0=")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if !well_formed {
        return Err(VerifyError::BadSignature);
    }
    Ok((signature, timestamp))
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    // https://docs.slack.dev/authentication/verifying-requests-from-slack
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TS: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verifier(secret: &str) -> Verifier {
        Verifier::new(secret.to_owned().into())
    }

    #[test]
    fn slacks_documented_example_verifies() {
        let v = verifier(DOC_SECRET);
        assert_eq!(v.sign(DOC_TS, DOC_BODY.as_bytes()), DOC_SIG);
        assert_eq!(v.verify_at(Some(DOC_SIG), Some(DOC_TS), DOC_BODY.as_bytes(), 1531420618 + 10), Ok(()));
    }

    #[test]
    fn tampering_wrong_secrets_and_bad_clocks_are_refused() {
        let v = verifier(DOC_SECRET);
        let now = 1531420618;
        let tampered = DOC_BODY.replace("roadrunner", "wile_e");
        assert_eq!(v.verify_at(Some(DOC_SIG), Some(DOC_TS), tampered.as_bytes(), now), Err(VerifyError::BadSignature));
        assert_eq!(
            verifier("another").verify_at(Some(DOC_SIG), Some(DOC_TS), DOC_BODY.as_bytes(), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            v.verify_at(Some(DOC_SIG), Some(DOC_TS), DOC_BODY.as_bytes(), now + 301),
            Err(VerifyError::BadTimestamp),
            "stale"
        );
        assert_eq!(
            v.verify_at(Some(DOC_SIG), Some(DOC_TS), DOC_BODY.as_bytes(), now - 301),
            Err(VerifyError::BadTimestamp),
            "future"
        );
        assert_eq!(v.verify_at(Some(DOC_SIG), Some("soon"), DOC_BODY.as_bytes(), now), Err(VerifyError::BadTimestamp));
        assert_eq!(v.verify_at(None, Some(DOC_TS), DOC_BODY.as_bytes(), now), Err(VerifyError::MissingHeaders));
        assert_eq!(v.verify_at(Some(DOC_SIG), None, DOC_BODY.as_bytes(), now), Err(VerifyError::MissingHeaders));
        assert_eq!(v.verify_at(Some("v0=00"), Some(DOC_TS), DOC_BODY.as_bytes(), now), Err(VerifyError::BadSignature));
    }

    #[test]
    fn agrees_with_slack_morphisms_verifier_on_fresh_requests() {
        use slack_morphism::{prelude::SlackSigningSecret, signature_verifier::SlackEventSignatureVerifier};
        let theirs = SlackEventSignatureVerifier::new(&SlackSigningSecret::new(DOC_SECRET.to_owned()));
        let ours = verifier(DOC_SECRET);
        let ts = unix_now().to_string();
        let body = r#"{"type":"event_callback","event":{"type":"message","text":"héllo"}}"#;
        let signature = ours.sign(&ts, body.as_bytes());
        assert!(theirs.verify(&signature, body, &ts).is_ok());
        assert!(ours.verify(Some(&signature), Some(&ts), body.as_bytes()).is_ok());
        // Flip the last hex digit: the forgery always differs from the signature.
        let (head, last) = signature.split_at(signature.len() - 1);
        let forged = format!("{head}{}", if last == "0" { '1' } else { '0' });
        assert_ne!(forged, signature);
        assert!(theirs.verify(&forged, body, &ts).is_err());
        assert!(ours.verify(Some(&forged), Some(&ts), body.as_bytes()).is_err());
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let v = verifier(DOC_SECRET);
        let body = DOC_BODY.as_bytes();
        let extremes = [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX];
        for ts in extremes {
            let ts_text = ts.to_string();
            let signature = v.sign(&ts_text, body);
            for now in [i64::MIN, 0, 1_531_420_618, i64::MAX] {
                let expected = if now.abs_diff(ts) <= 300 { Ok(()) } else { Err(VerifyError::BadTimestamp) };
                assert_eq!(v.verify_at(Some(&signature), Some(&ts_text), body, now), expected, "ts {ts}, now {now}");
                assert_eq!(
                    check_headers_at(Some(&signature), Some(&ts_text), now).map(|_| ()),
                    expected,
                    "ts {ts}, now {now}"
                );
            }
        }
        for unparsable in ["9223372036854775808", "-9223372036854775809", "1e9", "", " "] {
            assert_eq!(
                v.verify_at(Some(DOC_SIG), Some(unparsable), body, 1_531_420_618),
                Err(VerifyError::BadTimestamp),
                "{unparsable:?}"
            );
        }
    }

    #[test]
    fn header_checks_come_before_the_body() {
        let now = 1_531_420_618;
        assert_eq!(check_headers_at(Some(DOC_SIG), Some(DOC_TS), now + 10), Ok((DOC_SIG, DOC_TS)));
        assert_eq!(check_headers_at(Some(&format!(" {DOC_SIG} ")), Some(" 1531420618 "), now), Ok((DOC_SIG, DOC_TS)));
        assert_eq!(check_headers_at(None, Some(DOC_TS), now), Err(VerifyError::MissingHeaders));
        assert_eq!(check_headers_at(Some(DOC_SIG), None, now), Err(VerifyError::MissingHeaders));
        assert_eq!(check_headers_at(Some(DOC_SIG), Some(DOC_TS), now + 301), Err(VerifyError::BadTimestamp));
        assert_eq!(check_headers_at(Some(DOC_SIG), Some(DOC_TS), now - 301), Err(VerifyError::BadTimestamp));
        assert_eq!(check_headers_at(Some(DOC_SIG), Some(DOC_TS), now + 300).map(|_| ()), Ok(()));
        let malformed = [
            "v0=00",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=A2114D57B48EAC39B9AD189DD8316235A7B4A8D21A10BD27519666489C69B503",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b5033",
            "v0=g2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b5é",
            "",
        ];
        for signature in malformed {
            assert_eq!(
                check_headers_at(Some(signature), Some(DOC_TS), now),
                Err(VerifyError::BadSignature),
                "{signature}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(sig in ".{0,80}", ts in ".{0,20}", body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = verifier("s").verify(Some(&sig), Some(&ts), &body);
        }
    }
}
