//! What tests send through adclick: impression tokens signed with the tests' one key.

use adclick_click::token::TokenKey;

/// The secret of [`token_key`].
pub const TOKEN_SECRET: [u8; 32] = [0x33; 32];

/// The key tests sign and verify impression tokens with: id `k1`, [`TOKEN_SECRET`].
pub fn token_key() -> TokenKey {
    TokenKey::new("k1", &TOKEN_SECRET).unwrap()
}
