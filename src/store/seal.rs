//! Secrets at rest: bot tokens are stored sealed with AES-256-GCM under the key of
//! `STATE_ENCRYPTION_KEY`, so neither Redis nor the embedded file holds one in clear.
//!
//! Each sealing draws a fresh 96-bit nonce from the system's generator and binds the sealed
//! bytes to what they belong to (the associated data: an installation's key), so a sealed
//! token copied onto another installation does not open. `ring` is already in the
//! dependency tree (rustls uses it), so this adds no crate.

use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

/// Why sealed bytes could not be opened (or a key not made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// `STATE_ENCRYPTION_KEY` is not 64 hex digits (32 bytes).
    #[error("STATE_ENCRYPTION_KEY must be 64 hex digits (32 bytes; `openssl rand -hex 32` makes one)")]
    BadKey,
    /// The bytes were sealed under another key, for another owner, or changed.
    #[error("a sealed secret does not open with STATE_ENCRYPTION_KEY (another key, or changed bytes)")]
    Opening,
    /// The system's random generator failed.
    #[error("the system's random generator failed")]
    Random,
}

/// Seals and opens secrets under one key.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(AES-256-GCM)")
    }
}

impl Sealer {
    /// A sealer for the key written as 64 hex digits.
    pub fn from_hex(key: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(key.trim()).map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self { key: LessSafeKey::new(key), random: SystemRandom::new() })
    }

    /// `secret` sealed for `owner`: nonce, then ciphertext and tag.
    pub fn seal(&self, secret: &[u8], owner: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(owner.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Random)?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The secret in `sealed`, if it was sealed under this key for `owner` and is unchanged.
    pub fn open(&self, sealed: &[u8], owner: &str) -> Result<Vec<u8>, SealError> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN).ok_or(SealError::Opening)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Opening)?;
        let mut body = body.to_vec();
        let opened =
            self.key.open_in_place(nonce, Aad::from(owner.as_bytes()), &mut body).map_err(|_| SealError::Opening)?;
        Ok(opened.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_owner() {
        let sealer = Sealer::from_hex(KEY).unwrap();
        let sealed = sealer.seal(b"xoxb-secret", "team:T1").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"xoxb-secret"), "not in clear");
        assert_ne!(sealed, sealer.seal(b"xoxb-secret", "team:T1").unwrap(), "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed, "team:T1").unwrap(), b"xoxb-secret");
        assert_eq!(sealer.open(&sealed, "team:T2"), Err(SealError::Opening), "bound to its owner");
        let other = Sealer::from_hex(&KEY.replace("00", "ff")).unwrap();
        assert_eq!(other.open(&sealed, "team:T1"), Err(SealError::Opening));
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(&changed, "team:T1"), Err(SealError::Opening));
        assert_eq!(sealer.open(b"short", "team:T1"), Err(SealError::Opening));
        assert!(matches!(Sealer::from_hex("abcd"), Err(SealError::BadKey)));
        assert!(matches!(Sealer::from_hex(&"zz".repeat(32)), Err(SealError::BadKey)));
    }
}
