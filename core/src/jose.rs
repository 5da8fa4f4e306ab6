//! JWTs, only as far as SMART needs them: verifying the id_token against the server's JWKS (RS256, RS384, ES256,
//! ES384), and signing client assertions (private_key_jwt, the jwt-bearer grant) through a [`Signer`] so that a
//! device key can stay in the platform keystore. Access tokens are never decoded: they are opaque.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::secret::Secret;

/// Why a JWT was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a compact JWS")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key in the server's JWKS matches the token")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("claim {0} is missing or wrong")]
    Claim(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Verifies a compact JWS against a JWK Set and returns its claims.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |p: &str| B64.decode(p).map_err(|_| JwtError::Malformed);
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::Malformed)?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|_| JwtError::Malformed)?;
    let sig = decode(s)?;
    let alg = header["alg"].as_str().unwrap_or_default();
    let (kty, crv): (&str, Option<&str>) = match alg {
        "RS256" | "RS384" => ("RSA", None),
        "ES256" => ("EC", Some("P-256")),
        "ES384" => ("EC", Some("P-384")),
        other => return Err(JwtError::Algorithm(other.to_owned())),
    };
    let kid = header["kid"].as_str();
    let keys = jwks["keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let input = format!("{h}.{c}");
    let mut tried = false;
    for key in keys
        .iter()
        .filter(|k| k["kty"] == kty && (kid.is_none() || k["kid"].as_str() == kid))
    {
        if crv.is_some_and(|want| key["crv"].as_str() != Some(want)) {
            continue;
        }
        tried = true;
        let field = |n: &str| key[n].as_str().and_then(|v| B64.decode(v).ok());
        let ok = match alg {
            "RS256" | "RS384" => {
                let (Some(n), Some(e)) = (field("n"), field("e")) else {
                    continue;
                };
                let params = if alg == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA384
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, input.as_bytes(), &sig)
                    .is_ok()
            }
            _ => {
                let (Some(x), Some(y)) = (field("x"), field("y")) else {
                    continue;
                };
                let point = [&[4u8][..], &x, &y].concat();
                let params = if alg == "ES256" {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
        };
        if ok {
            return Ok(claims);
        }
    }
    Err(if tried {
        JwtError::Signature
    } else {
        JwtError::UnknownKey
    })
}

/// The claims of a compact JWS, NOT verified: only to learn which issuer to ask for keys before [`verify`].
pub fn unverified_claims(token: &str) -> Result<Value, JwtError> {
    let claims = token.split('.').nth(1).ok_or(JwtError::Malformed)?;
    let bytes = B64.decode(claims).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// Checks the standard id_token claims (OpenID Connect Core §3.1.3.7): `iss`; `aud` (string or list) contains the
/// client; with several audiences `azp` is present, and when present it is the client; `exp` not passed, `iat`
/// present and not in the future, `nbf` (when sent) reached, each with `skew_secs` of leeway.
pub fn check_id_token(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    now_secs: i64,
    skew_secs: i64,
) -> Result<(), JwtError> {
    if claims["iss"].as_str().map(|i| i.trim_end_matches('/')) != Some(issuer.trim_end_matches('/'))
    {
        return Err(JwtError::Claim("iss"));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Claim("aud"));
    }
    let several_audiences = claims["aud"].as_array().is_some_and(|l| l.len() > 1);
    match &claims["azp"] {
        Value::Null if several_audiences => return Err(JwtError::Claim("azp")),
        Value::Null => {}
        Value::String(azp) if azp == client_id => {}
        _ => return Err(JwtError::Claim("azp")),
    }
    let exp = claims["exp"].as_i64().ok_or(JwtError::Claim("exp"))?;
    // Saturating: a server may send any i64 as `exp` (i64::MAX overflowed here before).
    if exp.saturating_add(skew_secs) < now_secs {
        return Err(JwtError::Expired);
    }
    let iat = claims["iat"].as_i64().ok_or(JwtError::Claim("iat"))?;
    if iat.saturating_sub(skew_secs) > now_secs {
        return Err(JwtError::Claim("iat"));
    }
    match &claims["nbf"] {
        Value::Null => {}
        v => {
            let nbf = v.as_i64().ok_or(JwtError::Claim("nbf"))?;
            if nbf.saturating_sub(skew_secs) > now_secs {
                return Err(JwtError::Claim("nbf"));
            }
        }
    }
    Ok(())
}

/// Signs client assertions. Implement it over the platform keystore to keep a device key out of the app's memory;
/// [`SoftwareSigner`] keeps the key in the host's [`crate::host::SecureStore`] instead.
pub trait Signer: Send + Sync {
    /// `ES384` or `RS384`.
    fn algorithm(&self) -> String;
    /// The key id published with the public key.
    fn key_id(&self) -> String;
    /// The public key as a JWK (no private parts).
    fn public_jwk(&self) -> Value;
    /// Signs `message` (the JWS signing input) and returns the raw signature (r||s for ECDSA).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError>;
}

/// An ES384 key held in memory, stored (as PKCS#8) in the host's secure store.
#[derive(Debug)]
pub struct SoftwareSigner {
    pair: EcdsaKeyPair,
    pkcs8: Secret,
    kid: String,
}

impl SoftwareSigner {
    /// A new random P-384 key.
    pub fn generate() -> Result<Self, JwtError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| JwtError::Signing("key generation failed".into()))?;
        Self::from_pkcs8(&B64.encode(pkcs8.as_ref()))
    }

    /// A key saved earlier with [`SoftwareSigner::pkcs8_b64`].
    pub fn from_pkcs8(pkcs8_b64: &str) -> Result<Self, JwtError> {
        let der = B64
            .decode(pkcs8_b64)
            .map_err(|_| JwtError::Signing("stored key is damaged".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map_err(|_| JwtError::Signing("stored key is damaged".into()))?;
        let kid = B64.encode(
            &ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref()).as_ref()[..12],
        );
        Ok(Self {
            pair,
            pkcs8: Secret::new(pkcs8_b64),
            kid,
        })
    }

    /// The private key (base64url PKCS#8) for the secure store.
    pub fn pkcs8_b64(&self) -> &Secret {
        &self.pkcs8
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> String {
        "ES384".into()
    }
    fn key_id(&self) -> String {
        self.kid.clone()
    }
    fn public_jwk(&self) -> Value {
        let p = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-384", "alg": "ES384", "use": "sig", "kid": self.kid,
            "x": B64.encode(&p[1..49]), "y": B64.encode(&p[49..97])})
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| JwtError::Signing("ECDSA signing failed".into()))
    }
}

/// An RS384 key (SMART client req. 308) for a confidential client that registered an RSA key: the app brings the
/// key as PKCS#8 DER (ring does not generate RSA keys; make one with `openssl genpkey -algorithm RSA
/// -pkeyopt rsa_keygen_bits:2048 -outform DER`). The public JWK carries `kty`, `kid`, `n` and `e` (reqs. 313, 314).
#[derive(Debug)]
pub struct RsaSigner {
    pair: signature::RsaKeyPair,
    kid: String,
}

impl RsaSigner {
    /// Reads a DER RSA private key (2048 to 8192 bits), PKCS#8 or PKCS#1.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, JwtError> {
        let pair = signature::RsaKeyPair::from_pkcs8(der)
            .or_else(|_| signature::RsaKeyPair::from_der(der))
            .map_err(|_| JwtError::Signing("not a usable RSA private key".into()))?;
        let kid = B64.encode(
            &ring::digest::digest(&ring::digest::SHA256, pair.public().as_ref()).as_ref()[..12],
        );
        Ok(Self { pair, kid })
    }
}

impl Signer for RsaSigner {
    fn algorithm(&self) -> String {
        "RS384".into()
    }
    fn key_id(&self) -> String {
        self.kid.clone()
    }
    fn public_jwk(&self) -> Value {
        use ring::rsa::PublicKeyComponents;
        let c: PublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({"kty": "RSA", "alg": "RS384", "use": "sig", "kid": self.kid,
            "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA384,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| JwtError::Signing("RSA signing failed".into()))?;
        Ok(sig)
    }
}

/// A client assertion / jwt-bearer assertion: iss = sub = `client_id`, aud = the token URL, a 4-minute lifetime
/// (SMART allows at most 5) and a fresh `jti`.
pub fn client_assertion(
    signer: &dyn Signer,
    client_id: &str,
    token_url: &str,
    now_secs: i64,
) -> Result<Secret, JwtError> {
    let mut jti = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti)
        .map_err(|_| JwtError::Signing("no randomness".into()))?;
    let header = json!({"alg": signer.algorithm(), "kid": signer.key_id(), "typ": "JWT"});
    let claims = json!({"iss": client_id, "sub": client_id, "aud": token_url, "exp": now_secs + 240, "iat": now_secs, "jti": B64.encode(jti)});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = signer.sign(input.as_bytes())?;
    Ok(Secret::new(format!("{input}.{}", B64.encode(sig))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks_of(s: &SoftwareSigner) -> Value {
        json!({"keys": [s.public_jwk()]})
    }

    #[test]
    fn assertions_verify_and_carry_the_right_claims() {
        let signer = SoftwareSigner::generate().expect("key");
        let jwt = client_assertion(&signer, "app", "https://ehr/token", 1000).expect("sign");
        let claims = verify(jwt.expose(), &jwks_of(&signer)).expect("verify");
        assert_eq!(
            (
                claims["iss"].as_str(),
                claims["sub"].as_str(),
                claims["aud"].as_str()
            ),
            (Some("app"), Some("app"), Some("https://ehr/token"))
        );
        assert!(claims["exp"].as_i64().expect("exp") - 1000 <= 300);
        let again = SoftwareSigner::from_pkcs8(signer.pkcs8_b64().expose()).expect("reload");
        assert_eq!(again.public_jwk(), signer.public_jwk());
    }

    #[test]
    fn id_token_claims_are_checked() {
        let c = json!({"iss": "https://ehr/fhir", "aud": ["x", "app"], "azp": "app", "exp": 100, "iat": 40});
        assert_eq!(
            check_id_token(&c, "https://ehr/fhir/", "app", 50, 60),
            Ok(())
        );
        assert_eq!(
            check_id_token(&c, "https://other", "app", 50, 60),
            Err(JwtError::Claim("iss"))
        );
        assert_eq!(
            check_id_token(&c, "https://ehr/fhir", "nope", 50, 60),
            Err(JwtError::Claim("aud"))
        );
        assert_eq!(
            check_id_token(&c, "https://ehr/fhir", "app", 1000, 60),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let signer = SoftwareSigner::generate().expect("key");
        let other = SoftwareSigner::generate().expect("key");
        let jwt = client_assertion(&signer, "app", "u", 1).expect("sign");
        let mut other_jwks = jwks_of(&other);
        other_jwks["keys"][0]["kid"] = json!(signer.key_id());
        assert_eq!(verify(jwt.expose(), &other_jwks), Err(JwtError::Signature));
        assert_eq!(
            verify(jwt.expose(), &json!({"keys": []})),
            Err(JwtError::UnknownKey)
        );
        assert_eq!(verify("a.b", &jwks_of(&signer)), Err(JwtError::Malformed));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode("{}"));
        assert_eq!(
            verify(&none, &jwks_of(&signer)),
            Err(JwtError::Algorithm("none".into()))
        );
    }

    /// Client reqs. 313, 322, 323: the assertion's header names the key (`kid`) and `typ: JWT`; the device key's
    /// JWK carries `kty` and `kid` and no private part.
    #[test]
    fn assertion_headers_and_jwks_name_their_key() {
        let signer = SoftwareSigner::generate().expect("key");
        let jwt = client_assertion(&signer, "app", "https://ehr/token", 1000).expect("sign");
        let header: Value = serde_json::from_slice(
            &B64.decode(jwt.expose().split('.').next().expect("header"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(header["kid"].as_str(), Some(signer.key_id().as_str()));
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "ES384");
        let jwk = signer.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["kid"].as_str(), Some(signer.key_id().as_str()));
        assert!(jwk.get("d").is_none(), "no private key in the JWK");
        let claims = unverified_claims(jwt.expose()).expect("claims");
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));
    }

    /// Client req. 201 (OpenID Connect Core §3.1.3.7): `iat` present and not in the future, `nbf` reached, `azp`
    /// present with several audiences and equal to the client when sent.
    #[test]
    fn id_token_iat_nbf_and_azp_are_checked() {
        let ok = json!({"iss": "https://ehr", "aud": "app", "exp": 1000, "iat": 900});
        assert_eq!(check_id_token(&ok, "https://ehr", "app", 950, 60), Ok(()));
        let mut no_iat = ok.clone();
        no_iat.as_object_mut().expect("obj").remove("iat");
        assert_eq!(
            check_id_token(&no_iat, "https://ehr", "app", 950, 60),
            Err(JwtError::Claim("iat"))
        );
        let future = json!({"iss": "https://ehr", "aud": "app", "exp": 5000, "iat": 2000});
        assert_eq!(
            check_id_token(&future, "https://ehr", "app", 950, 60),
            Err(JwtError::Claim("iat"))
        );
        let not_yet =
            json!({"iss": "https://ehr", "aud": "app", "exp": 5000, "iat": 900, "nbf": 2000});
        assert_eq!(
            check_id_token(&not_yet, "https://ehr", "app", 950, 60),
            Err(JwtError::Claim("nbf"))
        );
        let within_skew =
            json!({"iss": "https://ehr", "aud": "app", "exp": 5000, "iat": 990, "nbf": 1000});
        assert_eq!(
            check_id_token(&within_skew, "https://ehr", "app", 950, 60),
            Ok(())
        );
        let several =
            json!({"iss": "https://ehr", "aud": ["app", "other"], "exp": 1000, "iat": 900});
        assert_eq!(
            check_id_token(&several, "https://ehr", "app", 950, 60),
            Err(JwtError::Claim("azp"))
        );
        let other_azp =
            json!({"iss": "https://ehr", "aud": "app", "azp": "other", "exp": 1000, "iat": 900});
        assert_eq!(
            check_id_token(&other_azp, "https://ehr", "app", 950, 60),
            Err(JwtError::Claim("azp"))
        );
    }

    /// Client reqs. 308, 314: RS384 assertions verify against the key's JWK (`kty`, `kid`, `n`, `e`).
    #[test]
    fn rs384_assertions_verify() {
        let signer =
            RsaSigner::from_pkcs8_der(include_bytes!("../tests/fixtures/rs384-test-client.pk8"))
                .expect("key");
        let jwt = client_assertion(&signer, "app", "https://ehr/token", 1000).expect("sign");
        let jwks = json!({"keys": [signer.public_jwk()]});
        let claims = verify(jwt.expose(), &jwks).expect("verifies");
        assert_eq!(claims["iss"], "app");
        assert!(RsaSigner::from_pkcs8_der(b"not a key").is_err());
    }
}
