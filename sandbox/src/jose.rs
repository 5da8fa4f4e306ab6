//! Compact JWS (RFC 7515) over `ring`: the sandbox signs id_tokens with ES384 and verifies the RS384/ES384 client
//! assertions of SMART's asymmetric client authentication against the keys a client registered.
//!
//! Only the algorithms SMART App Launch 2.2 names are accepted; `none` and HMAC never are.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// Why a JWT was refused. The text is safe to return to the client: it never echoes the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the JWT is not three base64url parts")]
    Malformed,
    #[error("the JWT header or claims are not a JSON object")]
    BadJson,
    #[error("algorithm {0:?} is not accepted (use RS384 or ES384)")]
    Algorithm(String),
    #[error("no registered key matches the JWT (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("the JWT signature does not verify")]
    Signature,
    #[error("the registered key is not a usable {0} key")]
    BadKey(&'static str),
}

/// The sandbox's ES384 signing key, with the `kid` it publishes in its JWKS.
#[derive(Debug)]
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    kid: String,
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A key stored earlier with [`SigningKey::pkcs8`].
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|_| ring::error::Unspecified)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref());
        let kid = B64.encode(&digest.as_ref()[..12]);
        Ok(Self {
            pair,
            pkcs8: pkcs8.to_vec(),
            kid,
        })
    }

    /// The PKCS#8 document, for persisting the key in `--db`.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK Set.
    pub fn jwks(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || x (48 bytes) || y (48 bytes).
        let (x, y) = point[1..].split_at(48);
        json!({"keys": [{
            "kty": "EC", "crv": "P-384", "use": "sig", "alg": "ES384", "kid": self.kid,
            "x": B64.encode(x), "y": B64.encode(y),
        }]})
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_typed("JWT", claims)
    }

    /// Signs `claims` as a compact JWS whose header says `typ` (`at+jwt` for an RFC 9068 access token).
    pub fn sign_typed(&self, typ: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES384", "typ": typ, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        // Signing with a valid key pair only fails if the system RNG fails, which ring treats as fatal too.
        let sig = self
            .pair
            .sign(&rng, signing_input.as_bytes())
            .map(|s| B64.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{signing_input}.{sig}")
    }
}

/// The decoded parts of a compact JWS, before its signature is checked.
#[derive(Debug)]
pub struct UnverifiedJwt {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS without checking it.
pub fn decode(token: &str) -> Result<UnverifiedJwt, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Value = serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::BadJson)?;
    let claims: Value = serde_json::from_slice(&B64.decode(c).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::BadJson)?;
    if !header.is_object() || !claims.is_object() {
        return Err(JwtError::BadJson);
    }
    let signature = B64.decode(s).map_err(|_| JwtError::Malformed)?;
    Ok(UnverifiedJwt {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature,
    })
}

impl UnverifiedJwt {
    /// Checks the signature against a JWK Set and returns the claims. The key is chosen by `kid` when the header
    /// names one, otherwise every key of the right type is tried.
    pub fn verify(self, jwks: &Value) -> Result<Value, JwtError> {
        self.verify_allowing(jwks, &["RS384", "ES384"])
    }

    /// [`UnverifiedJwt::verify`] with another list of accepted algorithms, out of RS256, RS384, ES256 and ES384
    /// (the access tokens of an external authorization server, [`crate::external`]).
    pub fn verify_allowing(self, jwks: &Value, algorithms: &[&str]) -> Result<Value, JwtError> {
        let alg = self.header["alg"].as_str().unwrap_or_default().to_owned();
        let kty = match alg.as_str() {
            _ if !algorithms.contains(&alg.as_str()) => return Err(JwtError::Algorithm(alg)),
            "ES256" | "ES384" => "EC",
            "RS256" | "RS384" => "RSA",
            _ => return Err(JwtError::Algorithm(alg)),
        };
        let kid = self.header["kid"].as_str().map(str::to_owned);
        let keys = jwks["keys"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let candidates: Vec<&Value> = keys
            .iter()
            .filter(|k| k["kty"] == kty)
            .filter(|k| kid.is_none() || k["kid"].as_str() == kid.as_deref())
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey(kid));
        }
        for key in candidates {
            if verify_with(key, &alg, self.signing_input.as_bytes(), &self.signature)? {
                return Ok(self.claims);
            }
        }
        Err(JwtError::Signature)
    }
}

fn verify_with(jwk: &Value, alg: &str, msg: &[u8], sig: &[u8]) -> Result<bool, JwtError> {
    let field = |name: &str, kind: &'static str| {
        jwk[name]
            .as_str()
            .and_then(|v| B64.decode(v).ok())
            .ok_or(JwtError::BadKey(kind))
    };
    if let Some((crv, len, verification)) = match alg {
        "ES384" => Some(("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED)),
        "ES256" => Some(("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED)),
        _ => None,
    } {
        if jwk["crv"] != crv {
            return Err(JwtError::BadKey(crv));
        }
        let (x, y) = (field("x", crv)?, field("y", crv)?);
        if x.len() != len || y.len() != len {
            return Err(JwtError::BadKey(crv));
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        let key = signature::UnparsedPublicKey::new(verification, point);
        Ok(key.verify(msg, sig).is_ok())
    } else {
        let (n, e) = (field("n", "RSA")?, field("e", "RSA")?);
        let key = signature::RsaPublicKeyComponents { n, e };
        let params = if alg == "RS256" {
            &signature::RSA_PKCS1_2048_8192_SHA256
        } else {
            &signature::RSA_PKCS1_2048_8192_SHA384
        };
        Ok(key.verify(params, msg, sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_token_verifies_against_own_jwks() {
        let key = SigningKey::generate().expect("key");
        let token = key.sign(&json!({"sub": "x"}));
        let claims = decode(&token)
            .expect("decode")
            .verify(&key.jwks())
            .expect("verify");
        assert_eq!(claims["sub"], "x");
    }

    #[test]
    fn tampered_claims_fail() {
        let key = SigningKey::generate().expect("key");
        let token = key.sign(&json!({"sub": "x"}));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(json!({"sub": "y"}).to_string());
        parts[1] = &forged;
        let err = decode(&parts.join("."))
            .expect("decode")
            .verify(&key.jwks());
        assert_eq!(err, Err(JwtError::Signature));
    }

    #[test]
    fn none_and_hmac_are_refused() {
        for alg in ["none", "HS256"] {
            let h = B64.encode(json!({"alg": alg}).to_string());
            let c = B64.encode("{}");
            let jwt = decode(&format!("{h}.{c}.")).expect("decode");
            assert_eq!(
                jwt.verify(&json!({"keys": []})),
                Err(JwtError::Algorithm(alg.into()))
            );
        }
    }

    #[test]
    fn the_allowed_algorithms_are_the_callers() {
        let h = B64.encode(json!({"alg": "RS256"}).to_string());
        let c = B64.encode("{}");
        let token = format!("{h}.{c}.");
        assert_eq!(
            decode(&token).expect("decode").verify(&json!({"keys": []})),
            Err(JwtError::Algorithm("RS256".into())),
            "client assertions: RS384 and ES384 only"
        );
        assert_eq!(
            decode(&token)
                .expect("decode")
                .verify_allowing(&json!({"keys": []}), &["RS256"]),
            Err(JwtError::UnknownKey(None))
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(decode("a.b").err(), Some(JwtError::Malformed));
        assert_eq!(decode("!!.!!.!!").err(), Some(JwtError::Malformed));
    }

    #[test]
    fn key_round_trips_through_pkcs8() {
        let key = SigningKey::generate().expect("key");
        let again = SigningKey::from_pkcs8(key.pkcs8()).expect("reload");
        assert_eq!(key.jwks(), again.jwks());
    }
}
