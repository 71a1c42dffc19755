//! `talos jwk generate`: new JSON Web Keys, with the RFC 7638 thumbprint as
//! the default `kid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwkKind {
    Eddsa,
    Rsa,
    Ecdsa,
    Hmac,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub kid: Option<String>,
    /// `sig` or `enc`.
    pub usage: String,
    /// RSA modulus or HMAC key size.
    pub bits: Option<usize>,
    /// `P-256`, `P-384` or `P-521`.
    pub curve: String,
    /// Overrides the RSA algorithm (RS384, PS256…).
    pub alg: Option<String>,
    pub jwks: bool,
    pub public_only: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            kid: None,
            usage: "sig".into(),
            bits: None,
            curve: "P-256".into(),
            alg: None,
            jwks: false,
            public_only: false,
        }
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic
/// order with no whitespace, base64url.
pub fn thumbprint(jwk: &Value) -> Result<String, String> {
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("missing kty")?;
    let members: &[&str] = match kty {
        "OKP" => &["crv", "kty", "x"],
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "oct" => &["k", "kty"],
        other => return Err(format!("unsupported kty {other}")),
    };
    let mut parts = Vec::new();
    for m in members {
        let v = jwk
            .get(*m)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing {m}"))?;
        parts.push(format!(
            "{}:{}",
            serde_json::to_string(m).unwrap(),
            serde_json::to_string(v).unwrap()
        ));
    }
    Ok(b64(&Sha256::digest(
        format!("{{{}}}", parts.join(",")).as_bytes(),
    )))
}

pub fn generate(kind: JwkKind, opts: &GenerateOptions) -> Result<Value, String> {
    if opts.usage != "sig" && opts.usage != "enc" {
        return Err("--use must be sig or enc".into());
    }
    let mut jwk: Map<String, Value> = Map::new();
    let private: &[&str] = match kind {
        JwkKind::Eddsa => {
            let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
            jwk.insert("kty".into(), json!("OKP"));
            jwk.insert("crv".into(), json!("Ed25519"));
            jwk.insert("alg".into(), json!("EdDSA"));
            jwk.insert("x".into(), json!(b64(sk.verifying_key().as_bytes())));
            jwk.insert("d".into(), json!(b64(&sk.to_bytes())));
            &["d"]
        }
        JwkKind::Rsa => {
            use rsa::traits::{PrivateKeyParts, PublicKeyParts};
            let bits = opts.bits.unwrap_or(2048);
            if !(2048..=8192).contains(&bits) {
                return Err("--bits must be between 2048 and 8192 for RSA".into());
            }
            let alg = opts.alg.clone().unwrap_or_else(|| "RS256".into());
            if !["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"].contains(&alg.as_str()) {
                return Err(format!("--alg {alg} is not an RSA algorithm"));
            }
            let key = rsa::RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| e.to_string())?;
            let primes = key.primes();
            jwk.insert("kty".into(), json!("RSA"));
            jwk.insert("alg".into(), json!(alg));
            jwk.insert("n".into(), json!(b64(&key.n().to_bytes_be())));
            jwk.insert("e".into(), json!(b64(&key.e().to_bytes_be())));
            jwk.insert("d".into(), json!(b64(&key.d().to_bytes_be())));
            jwk.insert("p".into(), json!(b64(&primes[0].to_bytes_be())));
            jwk.insert("q".into(), json!(b64(&primes[1].to_bytes_be())));
            if let (Some(dp), Some(dq), Some(qi)) = (key.dp(), key.dq(), key.crt_coefficient()) {
                jwk.insert("dp".into(), json!(b64(&dp.to_bytes_be())));
                jwk.insert("dq".into(), json!(b64(&dq.to_bytes_be())));
                jwk.insert("qi".into(), json!(b64(&qi.to_bytes_be())));
            }
            &["d", "p", "q", "dp", "dq", "qi"]
        }
        JwkKind::Ecdsa => {
            let (x, y, d, alg) = match opts.curve.as_str() {
                "P-256" => {
                    let sk = p256::SecretKey::random(&mut OsRng);
                    let pt = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                        &sk.public_key(),
                        false,
                    );
                    (
                        pt.x().unwrap().to_vec(),
                        pt.y().unwrap().to_vec(),
                        sk.to_bytes().to_vec(),
                        "ES256",
                    )
                }
                "P-384" => {
                    let sk = p384::SecretKey::random(&mut OsRng);
                    let pt = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                        &sk.public_key(),
                        false,
                    );
                    (
                        pt.x().unwrap().to_vec(),
                        pt.y().unwrap().to_vec(),
                        sk.to_bytes().to_vec(),
                        "ES384",
                    )
                }
                "P-521" => {
                    return Err("P-521 is not supported by this build; use P-256 or P-384".into())
                }
                other => return Err(format!("--curve {other} is not P-256, P-384 or P-521")),
            };
            jwk.insert("kty".into(), json!("EC"));
            jwk.insert("crv".into(), json!(opts.curve));
            jwk.insert("alg".into(), json!(alg));
            jwk.insert("x".into(), json!(b64(&x)));
            jwk.insert("y".into(), json!(b64(&y)));
            jwk.insert("d".into(), json!(b64(&d)));
            &["d"]
        }
        JwkKind::Hmac => {
            let bits = opts.bits.unwrap_or(512);
            if bits < 256 || !bits.is_multiple_of(8) {
                return Err("--bits must be at least 256 and a multiple of 8 for HMAC".into());
            }
            let mut k = vec![0u8; bits / 8];
            OsRng.fill_bytes(&mut k);
            let alg = match bits {
                b if b >= 512 => "HS512",
                b if b >= 384 => "HS384",
                _ => "HS256",
            };
            jwk.insert("kty".into(), json!("oct"));
            jwk.insert("alg".into(), json!(alg));
            jwk.insert("k".into(), json!(b64(&k)));
            &["k"]
        }
    };
    jwk.insert("use".into(), json!(opts.usage));
    let kid = match &opts.kid {
        Some(k) if !k.is_empty() => k.clone(),
        _ => thumbprint(&Value::Object(jwk.clone()))?,
    };
    jwk.insert("kid".into(), json!(kid));
    if opts.public_only {
        if kind == JwkKind::Hmac {
            return Err("an HMAC key has no public part".into());
        }
        for p in private {
            jwk.remove(*p);
        }
    }
    let v = Value::Object(jwk);
    Ok(if opts.jwks { json!({ "keys": [v] }) } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::jwks::SigningKeys;
    use crate::domain::derived::DerivedClaims;
    use crate::ports::TokenKeys;

    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    fn claims() -> DerivedClaims {
        serde_json::from_value(json!({
            "jti": "j", "sub": "k", "iss": "i", "iat": 1, "nbf": 1, "exp": 2, "akid": "k", "nid": "n"
        }))
        .unwrap()
    }

    fn keys_of(jwk: &Value) -> SigningKeys {
        SigningKeys::from_jwks_json(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for (kind, opts) in [
            (JwkKind::Eddsa, GenerateOptions::default()),
            (JwkKind::Ecdsa, GenerateOptions::default()),
            (
                JwkKind::Ecdsa,
                GenerateOptions {
                    curve: "P-384".into(),
                    ..Default::default()
                },
            ),
            (JwkKind::Rsa, GenerateOptions::default()),
        ] {
            let jwk = generate(kind, &opts).unwrap();
            assert_eq!(jwk["kid"], thumbprint(&jwk).unwrap());
            let keys = keys_of(&jwk);
            let token = keys.sign_jwt("", &claims()).unwrap();
            assert_eq!(keys.verify_jwt(&token).unwrap(), claims(), "{kind:?}");
            // Flip the last signature byte.
            let mut bad = token.clone().into_bytes();
            let n = bad.len();
            bad[n - 2] = if bad[n - 2] == b'A' { b'B' } else { b'A' };
            assert!(keys.verify_jwt(std::str::from_utf8(&bad).unwrap()).is_err());
            // Public output carries no private members.
            let public = keys.public_jwks().to_string();
            for f in [
                "\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\"",
            ] {
                assert!(!public.contains(f), "{kind:?} leaks {f}");
            }
            // A verifier holding only the public key accepts the token.
            let public_only =
                SigningKeys::from_jwks_json(keys.public_jwks().to_string().as_bytes()).unwrap();
            assert!(public_only.verify_jwt(&token).is_ok());
            assert!(public_only.sign_jwt("", &claims()).is_err());
        }
    }

    #[test]
    fn spec_ed25519_vector() {
        // Seed bytes 1..=32 → x from the spec's §15.2.
        let seed: Vec<u8> = (1..=32).collect();
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed.clone().try_into().unwrap());
        assert_eq!(
            b64(sk.verifying_key().as_bytes()),
            "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ"
        );
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "test-signing-key-1", "x": "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ", "d": b64(&seed)});
        let keys = keys_of(&jwk);
        let t = keys.sign_jwt("test-signing-key-1", &claims()).unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], "test-signing-key-1");
    }

    #[test]
    fn key_selection_and_alg_confusion() {
        let a = generate(
            JwkKind::Eddsa,
            &GenerateOptions {
                kid: Some("key-1".into()),
                usage: "enc".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let b = generate(
            JwkKind::Eddsa,
            &GenerateOptions {
                kid: Some("key-2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let keys =
            SigningKeys::from_jwks_json(json!({ "keys": [a, b] }).to_string().as_bytes()).unwrap();
        assert_eq!(keys.active("key-1").unwrap().kid(), "key-1");
        assert_eq!(keys.active("").unwrap().kid(), "key-2", "first use=sig");
        assert!(keys
            .active("nope")
            .unwrap_err()
            .to_string()
            .contains("signing_key_id"));
        // An HS256 token naming an Ed25519 key's kid must not verify.
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                kid: Some("key-2".into()),
                ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
            },
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(b"public-key-bytes"),
        )
        .unwrap();
        assert!(keys.verify_jwt(&hs).is_err());
        assert!(keys.verify_jwt("eyJhbGciOiJub25lIn0.e30.").is_err());
    }

    #[test]
    fn load_errors_name_the_url_and_never_the_payload() {
        let e = SigningKeys::load(&["base64://SECRETMARKER!!!not-base64".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("urls[0]") && !e.contains("SECRETMARKER"), "{e}");
        let e = SigningKeys::load(&[format!(
            "base64://{}",
            base64::engine::general_purpose::STANDARD.encode("not json")
        )])
        .unwrap_err()
        .to_string();
        assert!(e.contains("urls[0]"), "{e}");
        assert!(SigningKeys::load(&[])
            .unwrap_err()
            .to_string()
            .contains("no signing key URLs configured"));
    }

    #[test]
    fn options_are_validated() {
        assert!(generate(
            JwkKind::Rsa,
            &GenerateOptions {
                bits: Some(1024),
                ..Default::default()
            }
        )
        .is_err());
        assert!(generate(
            JwkKind::Hmac,
            &GenerateOptions {
                bits: Some(100),
                ..Default::default()
            }
        )
        .is_err());
        assert_eq!(
            generate(
                JwkKind::Hmac,
                &GenerateOptions {
                    bits: Some(256),
                    ..Default::default()
                }
            )
            .unwrap()["alg"],
            "HS256"
        );
        let p = generate(
            JwkKind::Eddsa,
            &GenerateOptions {
                public_only: true,
                jwks: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(p["keys"][0].get("d").is_none());
    }
}
