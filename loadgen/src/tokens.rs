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
            SendKind::Click
            | SendKind::Duplicate
            | SendKind::Expired
            | SendKind::Prefetch(_)
            | SendKind::Bot
            | SendKind::DenyListed
            | SendKind::TooFast
            | SendKind::Flood(_) => &self.genuine,
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
            // Version 2 only when the plan has users or prices: by default tokens stay version 1.
            user_hash: send.user_in_token.then_some(send.user_hash),
            price_micros: send.price_micros,
        };
        signer.sign(&claims)
    }
}

#[cfg(test)]
mod tests {
    use adclick_click::token::{VERSION_1, VERSION_2, Verifier};

    use super::*;
    use crate::plan::{Plan, PlanConfig};
    use crate::users::{PriceRange, user_hash};

    fn key() -> TokenKey {
        TokenKey::new("k1", &[7; 32]).unwrap()
    }

    fn genuine_sends(config: PlanConfig) -> Vec<Send> {
        let config = PlanConfig {
            start_ms: 1_800_000_000_000,
            duration_secs: 5.0,
            ..config
        };
        Plan::new(config)
            .unwrap()
            .filter(|s| matches!(s.kind, SendKind::Click | SendKind::Duplicate))
            .collect()
    }

    /// Mints each send's token and verifies it at its event time: its version and claims. (A
    /// version 1 token cannot carry a user hash or price and version 2 must carry one, so the
    /// verified claims tell the version the token was written in.)
    fn minted(sends: &[Send]) -> Vec<(u8, Claims)> {
        let minter = TokenMinter::new(key());
        let verifier = Verifier::new([key()], 30).unwrap();
        sends
            .iter()
            .map(|send| {
                let token = minter.mint(send).unwrap();
                let now = (send.event_time_ms / 1000) as u64;
                let claims = verifier.verify(&token, now).unwrap().claims;
                (claims.version(), claims)
            })
            .collect()
    }

    #[test]
    fn by_default_tokens_stay_version_1() {
        let sends = genuine_sends(PlanConfig::default());
        assert!(!sends.is_empty());
        for (version, claims) in minted(&sends) {
            assert_eq!(version, VERSION_1);
            assert_eq!((claims.user_hash, claims.price_micros), (None, None));
        }
    }

    #[test]
    fn users_and_prices_are_signed_into_version_2_tokens() {
        let prices = PriceRange {
            min_micros: 100_000,
            max_micros: 2_000_000,
        };
        let population: Vec<u64> = (1..=50).map(user_hash).collect();
        for (users, prices) in [(50, None), (0, Some(prices)), (50, Some(prices))] {
            let sends = genuine_sends(PlanConfig {
                users,
                prices,
                ..PlanConfig::default()
            });
            for (send, (version, claims)) in sends.iter().zip(minted(&sends)) {
                assert_eq!(version, VERSION_2);
                assert_eq!(claims.price_micros, send.price_micros);
                assert_eq!(claims.price_micros.is_some(), prices.is_some());
                if users > 0 {
                    assert_eq!(claims.user_hash, Some(send.user_hash));
                    assert!(population.contains(&send.user_hash));
                } else {
                    assert_eq!(claims.user_hash, None);
                }
                if let Some(price) = claims.price_micros {
                    assert!((100_000..=2_000_000).contains(&price), "{price}");
                }
            }
        }
    }
}
