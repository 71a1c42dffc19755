//! JWT signing keys from a JWKS (`credentials.derived_tokens.jwt.signing_keys.urls`):
//! Ed25519 (EdDSA), RSA (RS256) and P-256/P-384 (ES256/ES384). Signing and
//! verification use jsonwebtoken with its pure-Rust backend.
//!
//! Errors name `urls[i]` and never include key material; `Debug` shows kids
//! only.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};

use crate::domain::derived::DerivedClaims;
use crate::ports::{TokenKeyError, TokenKeys};

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Key(String),
}

pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    usage: Option<String>,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    public: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn alg(&self) -> &'static str {
        alg_name(self.alg)
    }
}

pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        _ => "unsupported",
    }
}

fn b64(v: &Value, field: &str, at: &str) -> Result<Vec<u8>, JwksError> {
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| JwksError::Key(format!("{at}: missing \"{field}\"")))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwksError::Key(format!("{at}: \"{field}\" is not base64url")))
}

fn str_field<'a>(v: &'a Value, f: &str) -> Option<&'a str> {
    v.get(f).and_then(Value::as_str)
}

fn public_members(v: &Value, alg: Algorithm, kid: &str) -> Value {
    let mut m = Map::new();
    for f in ["kty", "crv", "x", "y", "n", "e", "use"] {
        if let Some(x) = v.get(f) {
            m.insert(f.into(), x.clone());
        }
    }
    m.insert("kid".into(), json!(kid));
    m.insert("alg".into(), json!(alg_name(alg)));
    Value::Object(m)
}

fn parse_key(v: &Value, at: &str) -> Result<SigningKey, JwksError> {
    let kid = str_field(v, "kid")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| JwksError::Key(format!("{at}: missing \"kid\"")))?;
    let kty = str_field(v, "kty").unwrap_or("");
    let has_private = v.get("d").is_some();
    let bad = |what: &str| JwksError::Key(format!("{at} (kid {kid}): {what}"));
    let (alg, encoding, decoding) = match kty {
        "OKP" => {
            if str_field(v, "crv") != Some("Ed25519") {
                return Err(bad("only the Ed25519 curve is supported for OKP keys"));
            }
            let x = str_field(v, "x").ok_or_else(|| bad("missing \"x\""))?;
            let dec = DecodingKey::from_ed_components(x).map_err(|_| bad("invalid \"x\""))?;
            let enc = if has_private {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                let d: [u8; 32] = b64(v, "d", at)?
                    .try_into()
                    .map_err(|_| bad("\"d\" must be 32 bytes"))?;
                let sk = ed25519_dalek::SigningKey::from_bytes(&d);
                if URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes()) != x.trim_end_matches('=')
                {
                    return Err(bad("\"x\" does not match \"d\""));
                }
                let der = sk
                    .to_pkcs8_der()
                    .map_err(|_| bad("cannot encode the private key"))?;
                Some(EncodingKey::from_ed_der(der.as_bytes()))
            } else {
                None
            };
            (Algorithm::EdDSA, enc, dec)
        }
        "RSA" => {
            let n = str_field(v, "n").ok_or_else(|| bad("missing \"n\""))?;
            let e = str_field(v, "e").ok_or_else(|| bad("missing \"e\""))?;
            let dec =
                DecodingKey::from_rsa_components(n, e).map_err(|_| bad("invalid \"n\"/\"e\""))?;
            let enc = if has_private {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::traits::PublicKeyParts;
                use rsa::BigUint;
                let big = |f: &str| b64(v, f, at).map(|b| BigUint::from_bytes_be(&b));
                let key = rsa::RsaPrivateKey::from_components(
                    big("n")?,
                    big("e")?,
                    big("d")?,
                    vec![big("p")?, big("q")?],
                )
                .map_err(|_| bad("inconsistent RSA private key"))?;
                if key.size() < 256 {
                    return Err(bad("RSA keys must be at least 2048 bits"));
                }
                let der = key
                    .to_pkcs1_der()
                    .map_err(|_| bad("cannot encode the private key"))?;
                Some(EncodingKey::from_rsa_der(der.as_bytes()))
            } else {
                None
            };
            (Algorithm::RS256, enc, dec)
        }
        "EC" => {
            let x = str_field(v, "x").ok_or_else(|| bad("missing \"x\""))?;
            let y = str_field(v, "y").ok_or_else(|| bad("missing \"y\""))?;
            let dec =
                DecodingKey::from_ec_components(x, y).map_err(|_| bad("invalid \"x\"/\"y\""))?;
            let (alg, enc) = match str_field(v, "crv") {
                Some("P-256") => {
                    let enc = if has_private {
                        use p256::pkcs8::EncodePrivateKey;
                        let sk = p256::SecretKey::from_slice(&b64(v, "d", at)?)
                            .map_err(|_| bad("invalid \"d\""))?;
                        Some(EncodingKey::from_ec_der(
                            sk.to_pkcs8_der()
                                .map_err(|_| bad("cannot encode"))?
                                .as_bytes(),
                        ))
                    } else {
                        None
                    };
                    (Algorithm::ES256, enc)
                }
                Some("P-384") => {
                    let enc = if has_private {
                        use p384::pkcs8::EncodePrivateKey;
                        let sk = p384::SecretKey::from_slice(&b64(v, "d", at)?)
                            .map_err(|_| bad("invalid \"d\""))?;
                        Some(EncodingKey::from_ec_der(
                            sk.to_pkcs8_der()
                                .map_err(|_| bad("cannot encode"))?
                                .as_bytes(),
                        ))
                    } else {
                        None
                    };
                    (Algorithm::ES384, enc)
                }
                _ => {
                    return Err(bad(
                        "only the P-256 and P-384 curves are supported for EC keys",
                    ))
                }
            };
            (alg, enc, dec)
        }
        other => {
            return Err(bad(&format!(
                "key type {other:?} cannot sign derived tokens (use OKP/Ed25519, RSA or EC)"
            )))
        }
    };
    Ok(SigningKey {
        kid: kid.to_string(),
        alg,
        usage: str_field(v, "use").map(str::to_string),
        encoding,
        decoding,
        public: public_members(v, alg, kid),
    })
}

impl SigningKeys {
    /// Loads `base64://<standard base64 of a JWKS>` and `file://<path>` URLs.
    pub fn load(urls: &[String]) -> Result<SigningKeys, JwksError> {
        if urls.is_empty() {
            return Err(JwksError::Load("no signing key URLs configured".into()));
        }
        let mut keys = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let at = format!("credentials.derived_tokens.jwt.signing_keys.urls[{i}]");
            let bytes = if let Some(b) = url.strip_prefix("base64://") {
                STANDARD
                    .decode(b.trim())
                    .or_else(|_| URL_SAFE_NO_PAD.decode(b.trim().trim_end_matches('=')))
                    .map_err(|_| JwksError::Load(format!("{at}: not valid base64")))?
            } else if let Some(p) = url.strip_prefix("file://") {
                std::fs::read(p).map_err(|e| {
                    JwksError::Load(format!("{at}: cannot read the file: {}", e.kind()))
                })?
            } else {
                return Err(JwksError::Load(format!(
                    "{at}: only base64:// and file:// signing key URLs are supported by this build"
                )));
            };
            keys.extend(Self::parse_set(&bytes, &at)?.keys);
        }
        let mut seen = std::collections::HashSet::new();
        for k in &keys {
            if !seen.insert(k.kid.clone()) {
                return Err(JwksError::Load(format!(
                    "duplicate kid {:?} in the signing keys",
                    k.kid
                )));
            }
        }
        Ok(SigningKeys { keys })
    }

    pub fn from_jwks_json(bytes: &[u8]) -> Result<SigningKeys, JwksError> {
        Self::parse_set(bytes, "jwks")
    }

    fn parse_set(bytes: &[u8], at: &str) -> Result<SigningKeys, JwksError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|_| JwksError::Load(format!("{at}: not a JSON Web Key Set")))?;
        let list = match v.get("keys") {
            Some(Value::Array(a)) => a.clone(),
            _ if v.get("kty").is_some() => vec![v.clone()],
            _ => {
                return Err(JwksError::Load(format!(
                    "{at}: expected {{\"keys\": [...]}}"
                )))
            }
        };
        let keys = list
            .iter()
            .enumerate()
            .map(|(j, k)| parse_key(k, &format!("{at}.keys[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SigningKeys { keys })
    }

    /// kid hint → first `use: sig` → first (spec §8.3).
    pub fn active(&self, signing_key_id: &str) -> Result<&SigningKey, JwksError> {
        let signing = self.keys.iter().filter(|k| k.encoding.is_some());
        if !signing_key_id.is_empty() {
            return self
                .keys
                .iter()
                .find(|k| k.kid == signing_key_id && k.encoding.is_some())
                .ok_or_else(|| {
                    JwksError::Key(format!(
                        "signing_key_id={signing_key_id} is not a private key in the signing keys"
                    ))
                });
        }
        let mut first = None;
        for k in signing {
            if k.usage.as_deref() == Some("sig") {
                return Ok(k);
            }
            first.get_or_insert(k);
        }
        first.ok_or_else(|| JwksError::Key("the signing keys hold no private key".into()))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl TokenKeys for SigningKeys {
    fn sign_jwt(
        &self,
        signing_key_id: &str,
        claims: &DerivedClaims,
    ) -> Result<String, TokenKeyError> {
        let key = self
            .active(signing_key_id)
            .map_err(|e| TokenKeyError::NoKey(e.to_string()))?;
        let enc = key
            .encoding
            .as_ref()
            .ok_or_else(|| TokenKeyError::NoKey("no private key".into()))?;
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, enc).map_err(|e| TokenKeyError::Sign(e.to_string()))
    }

    fn verify_jwt(&self, token: &str) -> Result<DerivedClaims, TokenKeyError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenKeyError::Invalid("malformed JWT header".into()))?;
        let candidates: Vec<&SigningKey> = match &header.kid {
            Some(kid) => self.keys.iter().filter(|k| &k.kid == kid).collect(),
            None => self.keys.iter().collect(),
        };
        for k in candidates {
            // The key decides the algorithm; a header claiming another one
            // (e.g. HS256 against a public key) is refused.
            if header.alg != k.alg {
                continue;
            }
            let mut v = Validation::new(k.alg);
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            if let Ok(data) = jsonwebtoken::decode::<DerivedClaims>(token, &k.decoding, &v) {
                return Ok(data.claims);
            }
        }
        Err(TokenKeyError::Invalid(
            "signature verification failed".into(),
        ))
    }

    fn public_jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>() })
    }
}
