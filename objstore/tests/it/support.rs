//! What the object store tests share: the stack's garage as an `[s3]` section.

use adclick_objstore::S3Config;
use adclick_testsupport::Stack;

/// The stack's garage as `[s3]` describes it; credentials from the standard AWS variables,
/// as in production.
pub fn config(stack: &Stack, endpoint: &str) -> S3Config {
    // SAFETY: every test of this binary sets the same two values before making a client, and
    // nothing reads them concurrently with a different expectation.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", stack.aws_access_key_id());
        std::env::set_var("AWS_SECRET_ACCESS_KEY", stack.aws_secret_access_key());
    }
    S3Config {
        bucket: stack.s3_bucket().to_string(),
        region: stack.s3_region().to_string(),
        endpoint_url: endpoint.to_string(),
        force_path_style: true,
        ..S3Config::default()
    }
}
