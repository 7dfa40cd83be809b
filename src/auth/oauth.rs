//! OAuth 2.1 access tokens of one issuer (`--oauth-issuer`), checked the way a resource server
//! does (RFC 9068 JWT access tokens): the issuer's metadata (RFC 8414, else OpenID Connect
//! discovery) names its JWKS; keys are cached and fetched again when a token names a key id
//! the cache lacks (at most every [`REFRESH_EVERY`]); a token is accepted when its signature
//! (RS256 or ES256 only) verifies and its `iss`, `aud` (must contain our audience, RFC 8707),
//! `exp` and `nbf` hold, with [`LEEWAY`] for clock skew. Tokens are never forwarded anywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY: u64 = 30;
/// Least time between two fetches of the issuer's keys (an unknown `kid` cannot make us hammer
/// the issuer).
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// Largest metadata or JWKS document read.
const MAX_DOCUMENT: usize = 1 << 20;
/// Longest `sub` accepted (it becomes part of the principal's name).
const MAX_SUBJECT: usize = 255;

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not one this server accepts; the text says why (for the 401's
    /// `error_description`; it never contains the token).
    #[error("{0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched, so no token can be checked now.
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Unavailable(#[source] FetchError),
}

/// Why the issuer's metadata or keys could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: larger than {MAX_DOCUMENT} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: not the expected JSON: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Metadata(String),
    /// No keys yet and the last attempt was under [`REFRESH_EVERY`] ago.
    #[error("the issuer's keys could not be fetched yet (retried at most every {} s)", REFRESH_EVERY.as_secs())]
    NotYet,
}

/// What an accepted token says about its bearer.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    /// The `scope` claim (space-separated) or `scp` (array), as given.
    pub scopes: Vec<String>,
}

/// One issuer's verifier.
pub struct Verifier {
    issuer: String,
    audience: String,
    http: reqwest::Client,
    keys: RwLock<Arc<Vec<Key>>>,
    /// When the keys were last fetched (or tried): serialises refreshes and spaces them.
    fetched: Mutex<Option<Instant>>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
}

/// Whether `url` may carry security-relevant documents: https, or http to a loopback host.
pub fn trusted_url(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

impl Verifier {
    /// A verifier for tokens of `issuer` meant for `audience`. Refuses an issuer that is not
    /// https (plain http only to loopback, for local identity providers and tests).
    pub fn new(issuer: &str, audience: &str) -> Result<Verifier, String> {
        let parsed = Url::parse(issuer).map_err(|e| format!("--oauth-issuer {issuer:?}: {e}"))?;
        if !trusted_url(&parsed) {
            return Err(format!(
                "--oauth-issuer must be an https URL (plain http only on loopback), not {issuer}"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client for --oauth-issuer: {e}"))?;
        Ok(Verifier {
            issuer: issuer.trim_end_matches('/').to_string(),
            audience: audience.to_string(),
            http,
            keys: RwLock::default(),
            fetched: Mutex::default(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Fetches the issuer's metadata and keys now (at start, so a misconfiguration shows at
    /// once; tokens fetch them again when needed).
    pub async fn load(&self) -> Result<usize, FetchError> {
        let mut fetched = self.fetched.lock().await;
        *fetched = Some(Instant::now());
        let keys = self.fetch_keys().await?;
        let n = keys.len();
        *self.keys.write().await = Arc::new(keys);
        Ok(n)
    }

    /// Checks `token`; see the module documentation for the rules.
    pub async fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| VerifyError::Invalid("the bearer token is not a JWT".into()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(VerifyError::Invalid(format!(
                "tokens signed with {:?} are not accepted (RS256 or ES256 only)",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let keys = match self.find(kid, header.alg).await {
            Some(keys) => keys,
            None => {
                self.refresh().await?;
                self.find(kid, header.alg).await.ok_or_else(|| {
                    VerifyError::Invalid(format!(
                        "the token is signed by a key the issuer does not publish (kid {})",
                        crate::error::bounded(kid.unwrap_or("none"), 64)
                    ))
                })?
            }
        };
        let key = &keys.0[keys.1];
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            VerifyError::Invalid(match e.kind() {
                K::ExpiredSignature => "the token has expired".into(),
                K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
                K::InvalidAudience => format!(
                    "the token is not for this server: its aud does not contain {}",
                    self.audience
                ),
                K::InvalidIssuer => {
                    format!("the token was not issued by {}", self.issuer)
                }
                K::InvalidSignature => "the token's signature does not verify".into(),
                K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                _ => "the token is malformed".into(),
            })
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT {
            return Err(VerifyError::Invalid(
                "the token's sub is empty or too long".into(),
            ));
        }
        let scopes = match (claims.scope, claims.scp) {
            (Some(s), _) => s.split_ascii_whitespace().map(String::from).collect(),
            (None, Some(list)) => list,
            (None, None) => vec![],
        };
        Ok(Verified {
            subject: claims.sub,
            scopes,
        })
    }

    /// The cached key for (`kid`, `alg`): by id when the token names one, else the only key of
    /// that algorithm.
    async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<(Arc<Vec<Key>>, usize)> {
        let keys = self.keys.read().await.clone();
        let mut candidates = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid));
        let (i, _) = candidates.next()?;
        if kid.is_none() && candidates.next().is_some() {
            return None;
        }
        Some((keys.clone(), i))
    }

    /// Fetches the keys again unless that was done less than [`REFRESH_EVERY`] ago.
    async fn refresh(&self) -> Result<(), VerifyError> {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return match self.keys.read().await.is_empty() {
                true => Err(VerifyError::Unavailable(FetchError::NotYet)),
                false => Ok(()),
            };
        }
        *fetched = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), issuer = %self.issuer, "OAuth issuer keys fetched");
                *self.keys.write().await = Arc::new(keys);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, issuer = %self.issuer, "cannot fetch the OAuth issuer's keys");
                if self.keys.read().await.is_empty() {
                    Err(VerifyError::Unavailable(e))
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn fetch_keys(&self) -> Result<Vec<Key>, FetchError> {
        let metadata = self.metadata().await?;
        let jwks_uri = Url::parse(&metadata.jwks_uri)
            .ok()
            .filter(trusted_url)
            .ok_or_else(|| {
                FetchError::Metadata(format!(
                    "the issuer's jwks_uri {} is not an https URL",
                    crate::error::bounded(&metadata.jwks_uri, 200)
                ))
            })?;
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = self.get(jwks_uri).await?;
        // A key this library cannot read (another key type, an encryption key) is skipped, not
        // fatal: issuers publish several.
        Ok(set
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter(|jwk| {
                !matches!(
                    &jwk.common.public_key_use,
                    Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
                )
            })
            .filter_map(|jwk| {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                Some(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                })
            })
            .collect())
    }

    /// The issuer's metadata: RFC 8414 (`/.well-known/oauth-authorization-server` before the
    /// issuer's path), else OpenID Connect discovery (`/.well-known/openid-configuration`
    /// after it). Its `issuer` must be ours (no mix-up).
    async fn metadata(&self) -> Result<Metadata, FetchError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| FetchError::Metadata(e.to_string()))?;
        let path = issuer.path().trim_end_matches('/');
        let mut rfc8414 = issuer.clone();
        rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        let mut oidc = issuer.clone();
        oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
        let metadata: Metadata = match self.get(rfc8414).await {
            Ok(m) => m,
            Err(first) => self.get(oidc).await.inspect_err(|_| {
                tracing::debug!(error = %first, "no RFC 8414 metadata; OpenID discovery failed too");
            })?,
        };
        if metadata.issuer.trim_end_matches('/') != self.issuer {
            return Err(FetchError::Metadata(format!(
                "the metadata names issuer {}, not {}",
                crate::error::bounded(&metadata.issuer, 200),
                self.issuer
            )));
        }
        Ok(metadata)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, FetchError> {
        let shown = url.to_string();
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|source| FetchError::Http {
                url: shown.clone(),
                source,
            })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: shown,
                status: resp.status().as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|source| FetchError::Http {
            url: shown.clone(),
            source,
        })? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(FetchError::TooLarge { url: shown });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| FetchError::Json { url: shown, source })
    }
}
