//! `adclick token`: issues one impression token from the command line, or verifies one, with the
//! keys of the configuration's `[tokens]` section — for operators and scripts.

use std::io::Write;

use adclick_click::token::{Claims, Url, Verified, random_impression_id, unix_now_secs};
use adclick_click::wire::IMPRESSION_ID_LEN;
use anyhow::{Context, Result, anyhow, bail};

use crate::config::TokensConfig;

/// Flags of `adclick token`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Keys come from [tokens] in the configuration file, or from \
    ADCLICK_TOKENS__SIGNING_KEY_ID=<id> and ADCLICK_TOKENS__KEYS__<ID>=<hex secret>."
)]
pub struct TokenArgs {
    /// Ad id (non-zero).
    #[arg(long, required_unless_present = "verify")]
    ad: Option<u64>,
    /// Campaign id (non-zero).
    #[arg(long, required_unless_present = "verify")]
    campaign: Option<u64>,
    /// Advertiser id (non-zero).
    #[arg(long, required_unless_present = "verify")]
    advertiser: Option<u64>,
    /// Landing URL the click redirects to (http or https, no credentials).
    #[arg(long, required_unless_present = "verify")]
    url: Option<String>,
    /// Lifetime: seconds, or a number with a unit: 90s, 15m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: u64,
    /// Impression id, 32 hex digits [default: random].
    #[arg(long, value_parser = parse_impression_id)]
    impression_id: Option<[u8; IMPRESSION_ID_LEN]>,
    /// Issue time, Unix seconds [default: now].
    #[arg(long)]
    issued_at: Option<u64>,
    /// Who clicked: the placement side's salted hash of the user or device identity (click.proto's
    /// `user_hash`: first 8 bytes of SHA-256(salt || id)), never a raw id. Non-zero; decimal, or
    /// hex after `0x`. Makes the token version 2.
    #[arg(long, value_name = "U64", value_parser = parse_user_hash)]
    user_hash: Option<u64>,
    /// The click's price in micro-units of the campaign's currency (2.50 is 2500000). Makes the
    /// token version 2.
    #[arg(long, value_name = "U64")]
    price_micros: Option<u64>,
    /// Verify TOKEN instead of issuing one: print its fields, or why it is refused (exit status 1).
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with_all = [
            "ad", "campaign", "advertiser", "url", "ttl", "impression_id", "issued_at",
            "user_hash", "price_micros",
        ]
    )]
    verify: Option<String>,
    /// With --verify: the time to verify at, Unix seconds [default: now].
    #[arg(long, requires = "verify")]
    now: Option<u64>,
}

/// Runs `adclick token`, writing the token or the verified fields to `out`.
pub fn run(args: &TokenArgs, tokens: &TokensConfig, out: &mut impl Write) -> Result<()> {
    let verifier = tokens.verifier()?;
    if let Some(token) = &args.verify {
        let now_secs = args.now.unwrap_or_else(unix_now_secs);
        let verified = verifier
            .verify(token.trim(), now_secs)
            .map_err(|e| anyhow!("token refused ({}): {e}", e.reason()))?;
        write_verified(&verified, out)?;
        return Ok(());
    }

    let signing_key_id = tokens.signing_key_id.as_str();
    if signing_key_id.is_empty() {
        bail!("no signing key: set [tokens] signing_key_id (or ADCLICK_TOKENS__SIGNING_KEY_ID)");
    }
    let signer = verifier.signer(signing_key_id)?;
    // clap makes these present unless --verify is given.
    let (Some(ad_id), Some(campaign_id), Some(advertiser_id), Some(url)) =
        (args.ad, args.campaign, args.advertiser, &args.url)
    else {
        bail!("--ad, --campaign, --advertiser and --url are required to issue a token");
    };
    let issued_at_secs = args.issued_at.unwrap_or_else(unix_now_secs);
    let claims = Claims {
        impression_id: args.impression_id.unwrap_or_else(random_impression_id),
        ad_id,
        campaign_id,
        advertiser_id,
        landing_url: Url::parse(url).with_context(|| format!("--url {url}"))?,
        issued_at_secs,
        expires_at_secs: issued_at_secs
            .checked_add(args.ttl)
            .context("--issued-at plus --ttl overflows")?,
        user_hash: args.user_hash,
        price_micros: args.price_micros,
    };
    let token = signer.sign(&claims).context("cannot sign these claims")?;
    writeln!(out, "{token}")?;
    Ok(())
}

fn write_verified(verified: &Verified, out: &mut impl Write) -> Result<()> {
    let claims = &verified.claims;
    writeln!(out, "version:       {}", claims.version())?;
    writeln!(out, "key id:        {}", verified.key_id)?;
    writeln!(out, "impression id: {}", hex::encode(claims.impression_id))?;
    writeln!(out, "ad id:         {}", claims.ad_id)?;
    writeln!(out, "campaign id:   {}", claims.campaign_id)?;
    writeln!(out, "advertiser id: {}", claims.advertiser_id)?;
    writeln!(out, "landing URL:   {}", claims.landing_url)?;
    writeln!(out, "issued at:     {}", claims.issued_at_secs)?;
    writeln!(
        out,
        "expires at:    {} (lifetime {} s)",
        claims.expires_at_secs,
        claims.lifetime_secs()
    )?;
    if let Some(user_hash) = claims.user_hash {
        writeln!(out, "user hash:     {user_hash:#018x}")?;
    }
    if let Some(price_micros) = claims.price_micros {
        writeln!(out, "price:         {price_micros} micro-units")?;
    }
    Ok(())
}

/// `90`, `90s`, `15m`, `24h` or `7d`, in seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let (digits, unit_secs) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 'h')) => (&text[..at], 3_600),
        Some((at, 'd')) => (&text[..at], 86_400),
        _ => (text, 1),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90, 90s, 15m, 24h or 7d"))?;
    count
        .checked_mul(unit_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// A non-zero `u64`, decimal or hex after `0x` (hashes are usually written in hex).
fn parse_user_hash(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(0) => Err("0 means no user hash: leave --user-hash out".into()),
        Ok(hash) => Ok(hash),
        Err(e) => Err(format!("`{text}` is not a u64 in decimal or 0x hex: {e}")),
    }
}

fn parse_impression_id(text: &str) -> Result<[u8; IMPRESSION_ID_LEN], String> {
    let bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, expected {IMPRESSION_ID_LEN}", b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TokenArgs,
    }

    fn tokens_config() -> TokensConfig {
        TokensConfig {
            signing_key_id: "k2".into(),
            keys: [
                ("k1".to_string(), "11".repeat(32).into()),
                ("k2".to_string(), "22".repeat(32).into()),
            ]
            .into(),
            clock_skew_secs: Some(0),
        }
    }

    fn run_with(flags: &[&str], tokens: &TokensConfig) -> Result<String> {
        let cli = Cli::try_parse_from(std::iter::once("token").chain(flags.iter().copied()))?;
        let mut out = Vec::new();
        run(&cli.args, tokens, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    const ISSUE: &[&str] = &[
        "--ad=981234",
        "--campaign=4321",
        "--advertiser=17",
        "--url=https://shop.example/sale",
        "--ttl=1h",
        "--impression-id=000102030405060708090a0b0c0d0e0f",
        "--issued-at=1790000000",
    ];

    #[test]
    fn issues_a_token_the_configured_keys_verify() {
        let token = run_with(ISSUE, &tokens_config()).unwrap();
        assert!(
            token.ends_with('\n') && token.trim().len() > 100,
            "{token:?}"
        );
        let verifier = tokens_config().verifier().unwrap();
        let verified = verifier.verify(token.trim(), 1_790_000_000).unwrap();
        assert_eq!(verified.key_id, "k2");
        assert_eq!(
            verified.claims.impression_id,
            core::array::from_fn(|i| i as u8)
        );
        assert_eq!(verified.claims.ad_id, 981234);
        assert_eq!(verified.claims.expires_at_secs, 1_790_003_600);
        assert_eq!(
            verified.claims.landing_url.as_str(),
            "https://shop.example/sale"
        );
        // Deterministic given the impression id and issue time.
        assert_eq!(run_with(ISSUE, &tokens_config()).unwrap(), token);
    }

    #[test]
    fn verify_prints_fields_or_the_reason() {
        let token = run_with(ISSUE, &tokens_config()).unwrap();
        let printed = run_with(
            &["--verify", token.trim(), "--now=1790000000"],
            &tokens_config(),
        )
        .unwrap();
        assert!(printed.contains("key id:        k2\n"), "{printed}");
        assert!(
            printed.contains("impression id: 000102030405060708090a0b0c0d0e0f\n"),
            "{printed}"
        );
        assert!(
            printed.contains("expires at:    1790003600 (lifetime 3600 s)\n"),
            "{printed}"
        );

        let err = run_with(
            &["--verify", token.trim(), "--now=1790003600"],
            &tokens_config(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("token refused (expired)"),
            "{err}"
        );
        let err =
            run_with(&["--verify", "AAAA", "--now=1790000000"], &tokens_config()).unwrap_err();
        assert!(
            err.to_string().starts_with("token refused (malformed)"),
            "{err}"
        );
    }

    #[test]
    fn user_hash_and_price_issue_version_2() {
        let verifier = tokens_config().verifier().unwrap();
        let v1 = run_with(ISSUE, &tokens_config()).unwrap();
        let claims_of = |token: &str| verifier.verify(token.trim(), 1_790_000_000).unwrap().claims;
        assert_eq!(claims_of(&v1).version(), 1);
        for (extra, user_hash, price_micros) in [
            (
                &["--user-hash=0x0123456789ABCDEF"][..],
                Some(0x0123_4567_89ab_cdef),
                None,
            ),
            (&["--price-micros=0"][..], None, Some(0)),
            (
                &["--user-hash=81985529216486895", "--price-micros=2500000"][..],
                Some(81_985_529_216_486_895),
                Some(2_500_000),
            ),
        ] {
            let flags = [ISSUE, extra].concat();
            let token = run_with(&flags, &tokens_config()).unwrap();
            let claims = claims_of(&token);
            assert_eq!(claims.version(), 2, "{extra:?}");
            assert_eq!(
                (claims.user_hash, claims.price_micros),
                (user_hash, price_micros)
            );
            // Everything else is the version 1 token's.
            let as_v1 = adclick_click::Claims {
                user_hash: None,
                price_micros: None,
                ..claims
            };
            assert_eq!(as_v1, claims_of(&v1));
        }

        let flags = [
            ISSUE,
            &["--user-hash=0x0123456789abcdef", "--price-micros=250000"],
        ]
        .concat();
        let token = run_with(&flags, &tokens_config()).unwrap();
        let printed = run_with(
            &["--verify", token.trim(), "--now=1790000000"],
            &tokens_config(),
        )
        .unwrap();
        for line in [
            "version:       2\n",
            "user hash:     0x0123456789abcdef\n",
            "price:         250000 micro-units\n",
        ] {
            assert!(printed.contains(line), "{line:?} in {printed}");
        }
        let printed = run_with(
            &["--verify", v1.trim(), "--now=1790000000"],
            &tokens_config(),
        )
        .unwrap();
        assert!(printed.contains("version:       1\n"), "{printed}");
        assert!(
            !printed.contains("user hash") && !printed.contains("price"),
            "{printed}"
        );
    }

    #[test]
    fn user_hashes_are_non_zero_u64s() {
        assert_eq!(parse_user_hash("42"), Ok(42));
        assert_eq!(parse_user_hash("0xff"), Ok(255));
        assert_eq!(parse_user_hash("0XFF"), Ok(255));
        assert_eq!(parse_user_hash("0xffffffffffffffff"), Ok(u64::MAX));
        for bad in ["0", "0x0", "", "0x", "-1", "0x1ffffffffffffffff", "ab"] {
            assert!(parse_user_hash(bad).is_err(), "{bad}");
        }
        let flags = [ISSUE, &["--user-hash=0"]].concat();
        assert!(run_with(&flags, &tokens_config()).is_err());
        assert!(
            run_with(&["--verify=x", "--price-micros=1"], &tokens_config()).is_err(),
            "--verify conflicts"
        );
    }

    #[test]
    fn random_impression_ids_differ() {
        let flags = &ISSUE[..5];
        assert_ne!(
            run_with(flags, &tokens_config()).unwrap(),
            run_with(flags, &tokens_config()).unwrap()
        );
    }

    #[test]
    fn configuration_problems_are_explained() {
        let err = run_with(ISSUE, &TokensConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("no token keys configured"),
            "{err}"
        );
        let mut tokens = tokens_config();
        tokens.signing_key_id = "k3".into();
        let err = run_with(ISSUE, &tokens).unwrap_err();
        assert!(
            format!("{err:#}").contains("`k3` is not among the keys"),
            "{err:#}"
        );
        tokens.signing_key_id.clear();
        let err = run_with(ISSUE, &tokens).unwrap_err();
        assert!(err.to_string().contains("signing_key_id"), "{err}");
        let mut tokens = tokens_config();
        tokens.keys.insert("k3".into(), "abcd".into());
        let err = run_with(ISSUE, &tokens).unwrap_err();
        assert!(format!("{err:#}").contains("secret is 2 bytes"), "{err:#}");
    }

    #[test]
    fn bad_flags_are_refused() {
        let mut flags = ISSUE.to_vec();
        flags[3] = "--url=ftp://files.example/";
        let err = run_with(&flags, &tokens_config()).unwrap_err();
        assert!(format!("{err:#}").contains("scheme `ftp`"), "{err:#}");
        flags[3] = "--url=not a url";
        assert!(run_with(&flags, &tokens_config()).is_err());
        assert!(
            run_with(&ISSUE[1..], &tokens_config()).is_err(),
            "--ad is required"
        );
        assert!(
            run_with(&["--verify=x", "--ad=1"], &tokens_config()).is_err(),
            "--verify conflicts"
        );
        assert!(
            run_with(&["--now=1"], &tokens_config()).is_err(),
            "--now needs --verify"
        );
        let mut flags = ISSUE.to_vec();
        flags[5] = "--impression-id=0001";
        assert!(run_with(&flags, &tokens_config()).is_err());
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("24h"), Ok(86_400));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert!(parse_ttl("").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("-1s").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
        assert!(parse_ttl("999999999999999999d").is_err(), "overflow");
    }
}
