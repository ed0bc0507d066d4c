//! Tokens for the HTTP target: genuine ones signed with the configured key, and the forgeries the
//! plan asks for (a wrong secret under the real key id, or a key id nobody knows).

use adclick_click::token::{Claims, InvalidClaims, Signer, TokenKey};
use url::Url;

use crate::plan::{Forgery, Send, SendKind};

/// Mints the token of each send.
#[derive(Debug, Clone)]
pub struct TokenMinter {
    genuine: Signer,
    wrong_secret: Signer,
    unknown_key: Signer,
}

impl TokenMinter {
    /// `signing_key` signs genuine tokens; forgeries use secrets derived from nothing the
    /// verifier holds.
    pub fn new(signing_key: TokenKey) -> TokenMinter {
        let forged_secret = [0x5a_u8; 32];
        let wrong_secret = Signer::new(
            TokenKey::new(signing_key.id(), &forged_secret)
                .expect("a valid id with a 32-byte secret"),
        );
        let unknown_key = Signer::new(
            TokenKey::new("forged", &forged_secret).expect("a valid id with a 32-byte secret"),
        );
        TokenMinter {
            genuine: Signer::new(signing_key),
            wrong_secret,
            unknown_key,
        }
    }

    pub fn mint(&self, send: &Send) -> Result<String, InvalidClaims> {
        let signer = match send.kind {
            SendKind::Forged(Forgery::WrongKey) => &self.wrong_secret,
            SendKind::Forged(Forgery::UnknownKeyId) => &self.unknown_key,
            SendKind::Click | SendKind::Duplicate | SendKind::Expired => &self.genuine,
        };
        let issued_at_secs = send.issued_at_secs.max(0) as u64;
        let claims = Claims {
            impression_id: send.impression_id,
            ad_id: send.ad.ad_id,
            campaign_id: send.ad.campaign_id,
            advertiser_id: send.ad.advertiser_id,
            landing_url: Url::parse(&send.landing_url()).expect("landing_url() builds a valid URL"),
            issued_at_secs,
            expires_at_secs: issued_at_secs + send.ttl_secs,
        };
        signer.sign(&claims)
    }
}
