//! The admin token: read from the user's Secret (`spec.auth.secretRef`) or from a
//! Secret the operator generates once (`<name>-admin`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use rand::RngCore;

use crate::naming::TOKEN_KEY;
use crate::resources::statefulset::TokenSource;
use crate::resources::Owner;

/// Why the admin token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The API request failed.
    #[error("reading or creating the admin token Secret failed: {0}")]
    Kube(#[from] kube::Error),
    /// The user's Secret does not exist.
    #[error("Secret {0} named by spec.auth.secretRef does not exist")]
    MissingSecret(String),
    /// The Secret lacks the key, or it is empty or not UTF-8.
    #[error("Secret {secret} has no non-empty UTF-8 key {key}")]
    MissingKey {
        /// Secret name.
        secret: String,
        /// Expected key.
        key: String,
    },
}

/// The token and where pods read it from.
#[derive(Debug, Clone)]
pub struct AdminToken {
    /// Secret and key the pods' `SESHAT_ADMIN_TOKEN` comes from.
    pub source: TokenSource,
    /// The token itself, for the operator's admin calls.
    pub token: String,
}

/// Returns the admin token, generating `<name>-admin` on first use when the spec
/// names no Secret. The generated Secret is created once and never rewritten: the
/// running servers hold the token from their environment, so changing it would lock
/// the operator out until every pod restarted.
pub async fn ensure(secrets: &Api<Secret>, owner: &Owner<'_>) -> Result<AdminToken, TokenError> {
    let user_ref = owner.cluster.spec.auth.as_ref().and_then(|a| a.secret_ref.clone());
    let source = match &user_ref {
        Some(r) => TokenSource { secret: r.name.clone(), key: r.key.clone() },
        None => TokenSource { secret: owner.names.admin_secret(), key: TOKEN_KEY.into() },
    };
    let secret = match secrets.get_opt(&source.secret).await? {
        Some(s) => s,
        None if user_ref.is_some() => return Err(TokenError::MissingSecret(source.secret)),
        None => {
            let fresh = generated(owner, &source);
            match secrets.create(&PostParams::default(), &fresh).await {
                Ok(created) => created,
                // Lost a race with another reconcile: use the winner's token.
                Err(kube::Error::Api(s)) if s.is_already_exists() => secrets.get(&source.secret).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let token = read_key(&secret, &source.key)
        .ok_or_else(|| TokenError::MissingKey { secret: source.secret.clone(), key: source.key.clone() })?;
    Ok(AdminToken { source, token })
}

fn read_key(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok().filter(|t| !t.is_empty());
    }
    secret.string_data.as_ref().and_then(|d| d.get(key)).filter(|t| !t.is_empty()).cloned()
}

fn generated(owner: &Owner<'_>, source: &TokenSource) -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Secret {
        metadata: owner.meta(source.secret.clone()),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(source.key.clone(), ByteString(token.into_bytes()))])),
        ..Secret::default()
    }
}
