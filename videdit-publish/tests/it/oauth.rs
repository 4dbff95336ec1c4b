//! The OAuth flow through the fake: consent redirect, PKCE code exchange, refresh, revoke.

use videdit_core::secret::Secret;
use videdit_publish::PublishError;
use videdit_publish::fake::REDIRECT_URI;
use videdit_publish::oauth::Pkce;
use videdit_publish::youtube::{SCOPE_READONLY, SCOPE_UPLOAD, YouTube};

use crate::support::setup;

/// Follows the consent page like a browser would, returning the callback's query.
async fn consent(url: url::Url) -> (u16, std::collections::HashMap<String, String>) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let Some(location) = resp.headers().get("location") else { return (status, Default::default()) };
    let location = url::Url::parse(location.to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    (status, location.query_pairs().into_owned().collect())
}

#[tokio::test]
async fn full_flow_with_pkce() {
    let f = setup().await;
    let pkce = Pkce::generate();
    let (status, callback) = consent(f.yt.authorize_url("state-123", &pkce.challenge)).await;
    assert_eq!(status, 302);
    assert_eq!(callback["state"], "state-123");

    let tokens = f.yt.exchange_code(&callback["code"], &pkce.verifier).await.unwrap();
    assert_eq!(tokens.scope, format!("{SCOPE_UPLOAD} {SCOPE_READONLY}"));
    assert!(tokens.expires_at > time::OffsetDateTime::now_utc());
    let issued = f.fake.issued_tokens();
    assert!(issued.access_tokens.contains(tokens.access_token.expose()));
    assert!(issued.refresh_tokens.contains(tokens.refresh_token.as_ref().unwrap().expose()));

    let channel = f.yt.channel(&tokens.access_token).await.unwrap();
    assert_eq!((channel.id, channel.title), f.fake.channel());

    // A code works once.
    let again = f.yt.exchange_code(&callback["code"], &pkce.verifier).await.unwrap_err();
    assert_eq!(again.code(), "needs_reauthorization");
}

#[tokio::test]
async fn a_wrong_verifier_fails() {
    let f = setup().await;
    let pkce = Pkce::generate();
    let (_, callback) = consent(f.yt.authorize_url("s", &pkce.challenge)).await;
    let err = f.yt.exchange_code(&callback["code"], &Pkce::generate().verifier).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauthorization");
    assert_eq!(err.message(), "Invalid code verifier.");
}

#[tokio::test]
async fn the_fake_checks_the_authorization_request() {
    let f = setup().await;
    let pkce = Pkce::generate();
    let good = f.yt.authorize_url("s", &pkce.challenge);
    let with = |key: &str, value: &str| {
        let mut url = good.clone();
        let pairs: Vec<(String, String)> = good
            .query_pairs()
            .into_owned()
            .map(|(k, v)| if k == key { (k, value.to_owned()) } else { (k, v) })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url
    };
    for (key, value) in [
        ("client_id", "someone-else"),
        ("redirect_uri", "https://evil.example/cb"),
        ("code_challenge_method", "plain"),
        ("code_challenge", "short"),
        ("scope", "https://www.googleapis.com/auth/drive"),
    ] {
        let (status, callback) = consent(with(key, value)).await;
        assert!(status == 400 || status == 401, "{key}: {status}");
        assert!(callback.is_empty());
    }
}

#[tokio::test]
async fn a_wrong_client_secret_is_rejected() {
    let f = setup().await;
    let mut cfg = f.fake.config();
    cfg.client_secret = Secret::new("wrong".into());
    let yt = YouTube::new(cfg).unwrap();
    let err = yt.refresh(f.tokens.refresh_token.as_ref().unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, PublishError::Rejected { status: 401, reason, .. } if reason == "invalid_client"),
        "{err:?}"
    );
}

#[tokio::test]
async fn refresh_gives_a_working_access_token_and_keeps_the_refresh_token() {
    let f = setup().await;
    f.fake.expire_access_tokens();
    let err = f.yt.channel(&f.tokens.access_token).await.unwrap_err();
    assert_eq!(err.code(), "platform_unauthorized");

    let refresh = f.tokens.refresh_token.clone().unwrap();
    let fresh = f.yt.refresh(&refresh).await.unwrap();
    assert_ne!(fresh.access_token, f.tokens.access_token);
    assert_eq!(fresh.refresh_token.as_ref(), Some(&refresh));
    f.yt.channel(&fresh.access_token).await.unwrap();
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_reauthorization() {
    let f = setup().await;
    let refresh = f.tokens.refresh_token.clone().unwrap();
    f.yt.revoke(&refresh).await.unwrap();
    assert_eq!(f.fake.issued_tokens().revoked, [refresh.expose().clone()]);
    // Revoking again is not an error.
    f.yt.revoke(&refresh).await.unwrap();

    let err = f.yt.refresh(&refresh).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauthorization");
    assert_eq!(err.message(), "Token has been expired or revoked.");
    assert!(!err.is_retryable());
    // Its access tokens went with it.
    assert_eq!(f.yt.channel(&f.tokens.access_token).await.unwrap_err().code(), "platform_unauthorized");

    let unknown = f.yt.refresh(&Secret::new("1//never-issued".into())).await.unwrap_err();
    assert_eq!(unknown.code(), "needs_reauthorization");
}
