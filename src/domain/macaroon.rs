//! Macaroons in the libmacaroons V2 binary format with first-party caveats,
//! following gopkg.in/macaroon.v2 (which Ory Talos uses):
//!
//! * signing key = HMAC-SHA256(key = "macaroons-key-generator", root key);
//! * sig₀ = HMAC-SHA256(signing key, identifier);
//! * sigᵢ = HMAC-SHA256(sigᵢ₋₁, caveatᵢ) for each first-party caveat.
//!
//! V2 layout: 0x02, [location field], identifier field, EOS, per caveat
//! (identifier field, EOS), EOS, signature field. A field is
//! varint(type) ‖ varint(len) ‖ bytes; types 1 location, 2 identifier,
//! 4 verification id, 6 signature; EOS is 0.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const KEY_GENERATOR: &[u8] = b"macaroons-key-generator";
const FIELD_EOS: u64 = 0;
const FIELD_LOCATION: u64 = 1;
const FIELD_IDENTIFIER: u64 = 2;
const FIELD_VID: u64 = 4;
const FIELD_SIGNATURE: u64 = 6;
/// Bounds that keep decoding of hostile input cheap.
const MAX_FIELD: usize = 8192;
const MAX_CAVEATS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacaroonError {
    #[error("macaroon encoding is invalid: {0}")]
    Malformed(&'static str),
    #[error("third-party caveats are not supported")]
    ThirdParty,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Macaroon {
    pub location: String,
    pub identifier: Vec<u8>,
    pub caveats: Vec<Vec<u8>>,
    signature: [u8; 32],
}

impl std::fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Macaroon")
            .field("location", &self.location)
            .field("caveats", &self.caveats.len())
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn signing_key(root_key: &[u8]) -> [u8; 32] {
    hmac(KEY_GENERATOR, root_key)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_field(out: &mut Vec<u8>, kind: u64, data: &[u8]) {
    put_varint(out, kind);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, MacaroonError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or(MacaroonError::Malformed("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MacaroonError::Malformed("varint too long"))
    }

    /// Reads a field header and its data; `None` for EOS.
    fn field(&mut self) -> Result<Option<(u64, &'a [u8])>, MacaroonError> {
        let kind = self.varint()?;
        if kind == FIELD_EOS {
            return Ok(None);
        }
        let len = self.varint()? as usize;
        if len > MAX_FIELD || len > self.buf.len() {
            return Err(MacaroonError::Malformed("field length out of range"));
        }
        let (data, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(Some((kind, data)))
    }
}

impl Macaroon {
    pub fn mint(root_key: &[u8], identifier: &[u8], location: &str) -> Self {
        Macaroon {
            location: location.to_string(),
            identifier: identifier.to_vec(),
            caveats: Vec::new(),
            signature: hmac(&signing_key(root_key), identifier),
        }
    }

    pub fn add_first_party_caveat(&mut self, caveat: &[u8]) {
        self.signature = hmac(&self.signature, caveat);
        self.caveats.push(caveat.to_vec());
    }

    pub fn signature(&self) -> [u8; 32] {
        self.signature
    }

    pub fn verify_signature(&self, root_key: &[u8]) -> bool {
        let mut sig = hmac(&signing_key(root_key), &self.identifier);
        for c in &self.caveats {
            sig = hmac(&sig, c);
        }
        bool::from(sig.ct_eq(&self.signature))
    }

    pub fn encode_v2(&self) -> Vec<u8> {
        let mut out = vec![2u8];
        if !self.location.is_empty() {
            put_field(&mut out, FIELD_LOCATION, self.location.as_bytes());
        }
        put_field(&mut out, FIELD_IDENTIFIER, &self.identifier);
        put_varint(&mut out, FIELD_EOS);
        for c in &self.caveats {
            put_field(&mut out, FIELD_IDENTIFIER, c);
            put_varint(&mut out, FIELD_EOS);
        }
        put_varint(&mut out, FIELD_EOS);
        put_field(&mut out, FIELD_SIGNATURE, &self.signature);
        out
    }

    pub fn decode_v2(bytes: &[u8]) -> Result<Self, MacaroonError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or(MacaroonError::Malformed("empty"))?;
        if version != 2 {
            return Err(MacaroonError::Malformed("not a V2 macaroon"));
        }
        let mut r = Reader { buf: rest };
        let mut location = String::new();
        let mut identifier = None;
        while let Some((kind, data)) = r.field()? {
            match kind {
                FIELD_LOCATION if identifier.is_none() && location.is_empty() => {
                    location = String::from_utf8(data.to_vec())
                        .map_err(|_| MacaroonError::Malformed("location is not UTF-8"))?;
                }
                FIELD_IDENTIFIER if identifier.is_none() => identifier = Some(data.to_vec()),
                _ => return Err(MacaroonError::Malformed("unexpected field in header")),
            }
        }
        let identifier = identifier.ok_or(MacaroonError::Malformed("missing identifier"))?;
        let mut caveats = Vec::new();
        while let Some((kind, data)) = r.field()? {
            let cid = match kind {
                FIELD_IDENTIFIER => data.to_vec(),
                FIELD_LOCATION => return Err(MacaroonError::ThirdParty),
                _ => return Err(MacaroonError::Malformed("unexpected field in caveat")),
            };
            if let Some((kind, _)) = r.field()? {
                return Err(if kind == FIELD_VID || kind == FIELD_LOCATION {
                    MacaroonError::ThirdParty
                } else {
                    MacaroonError::Malformed("unexpected field in caveat")
                });
            }
            caveats.push(cid);
            if caveats.len() > MAX_CAVEATS {
                return Err(MacaroonError::Malformed("too many caveats"));
            }
        }
        match r.field()? {
            Some((FIELD_SIGNATURE, sig)) if sig.len() == 32 => {
                if !r.buf.is_empty() {
                    return Err(MacaroonError::Malformed("trailing bytes"));
                }
                let mut signature = [0u8; 32];
                signature.copy_from_slice(sig);
                Ok(Macaroon {
                    location,
                    identifier,
                    caveats,
                    signature,
                })
            }
            _ => Err(MacaroonError::Malformed("missing signature")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_chain() {
        let mut m = Macaroon::mint(b"root-key", b"id-1", "https://example.com");
        m.add_first_party_caveat(b"a = 1");
        m.add_first_party_caveat(b"b = 2");
        let bytes = m.encode_v2();
        assert_eq!(&bytes[..3], &[2, 1, 19], "version, location field, length");
        let back = Macaroon::decode_v2(&bytes).unwrap();
        assert_eq!(back, m);
        assert!(back.verify_signature(b"root-key"));
        assert!(!back.verify_signature(b"other-key"));
    }

    #[test]
    fn tampering_breaks_the_chain() {
        let mut m = Macaroon::mint(b"k", b"id", "");
        m.add_first_party_caveat(b"scope = read");
        let mut t = m.clone();
        t.caveats[0] = b"scope = admin".to_vec();
        assert!(!t.verify_signature(b"k"));
        let mut dropped = m.clone();
        dropped.caveats.clear();
        assert!(
            !dropped.verify_signature(b"k"),
            "removing a caveat invalidates"
        );
    }

    #[test]
    fn hmac_chain_matches_the_documented_construction() {
        // sig = HMAC(HMAC("macaroons-key-generator", root), id), then chained.
        let root = b"this is our super secret key; only we should know it";
        let m = Macaroon::mint(root, b"we used our secret key", "http://mybank/");
        let key = hmac(KEY_GENERATOR, root);
        assert_eq!(m.signature(), hmac(&key, b"we used our secret key"));
        let mut c = m.clone();
        c.add_first_party_caveat(b"account = 3735928559");
        assert_eq!(c.signature(), hmac(&m.signature(), b"account = 3735928559"));
    }

    #[test]
    fn garbage_never_panics() {
        let good = Macaroon::mint(b"k", b"id", "loc").encode_v2();
        for cut in 0..good.len() {
            let _ = Macaroon::decode_v2(&good[..cut]);
        }
        for bytes in [
            vec![],
            vec![2],
            vec![
                2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            vec![1, 2, 3],
            vec![2, 2, 200],
        ] {
            assert!(Macaroon::decode_v2(&bytes).is_err());
        }
    }
}
