use crate::domain::derived::DerivedClaims;

#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    /// No signing key is configured, or the hinted one is missing.
    #[error("{0}")]
    NoKey(String),
    /// Signing failed (bad key material).
    #[error("{0}")]
    Sign(String),
    /// The token's signature or header is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// JWT signing keys (a JWKS): sign derived tokens, verify them, and publish
/// the public half.
pub trait TokenKeys: Send + Sync + 'static {
    /// Signs with the active key (`signing_key_id` hint → first `use: sig` → first).
    fn sign_jwt(
        &self,
        signing_key_id: &str,
        claims: &DerivedClaims,
    ) -> Result<String, TokenKeyError>;
    /// Verifies signature and algorithm; claim rules are checked by the caller.
    fn verify_jwt(&self, token: &str) -> Result<DerivedClaims, TokenKeyError>;
    /// `{"keys": [...]}` with public parameters only.
    fn public_jwks(&self) -> serde_json::Value;
}
