//! The object store client against the stack's garage: objects written, listed, read and
//! deleted; and an `https://` endpoint whose certificate a private CA signed (a TLS terminator
//! in front of garage), reached only with `[s3.tls] ca_file`.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod support;

use adclick_objstore::{delete, get, list, list_dirs, put};
use adclick_testsupport::{Stack, TestPki, TlsTerminator};

use support::config;

#[tokio::test]
async fn objects_are_written_listed_read_and_deleted() {
    let stack = Stack::get();
    let scope = stack.isolated("objstore");
    let s3 = config(&stack, stack.s3_endpoint());
    let client = s3.client().await.unwrap();
    let prefix = scope.s3_prefix();
    let (a, b) = (format!("{prefix}d1/a"), format!("{prefix}d2/b"));
    put(&client, &s3.bucket, &a, b"first".to_vec())
        .await
        .unwrap();
    put(&client, &s3.bucket, &b, b"second".to_vec())
        .await
        .unwrap();
    assert_eq!(
        list(&client, &s3.bucket, &prefix).await.unwrap(),
        vec![(a.clone(), 5), (b.clone(), 6)]
    );
    assert_eq!(
        list_dirs(&client, &s3.bucket, &prefix).await.unwrap(),
        vec![format!("{prefix}d1/"), format!("{prefix}d2/")]
    );
    assert_eq!(
        get(&client, &s3.bucket, &a).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    delete(&client, &s3.bucket, &a).await.unwrap();
    assert_eq!(get(&client, &s3.bucket, &a).await.unwrap(), None);
    delete(&client, &s3.bucket, &b).await.unwrap();
    assert!(list(&client, &s3.bucket, &prefix).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_signed_by_a_private_ca() {
    let stack = Stack::get();
    let scope = stack.isolated("objstore-https");
    let pki = TestPki::new();
    let upstream = stack
        .s3_endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let tls = TlsTerminator::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        &pki,
        upstream,
    );
    let endpoint = format!("https://localhost:{}", tls.addr.port());
    let key = format!("{}object", scope.s3_prefix());

    let mut s3 = config(&stack, &endpoint);
    let untrusting = s3.client().await.unwrap();
    let error = put(&untrusting, &s3.bucket, &key, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(
        format!("{error}").to_lowercase().contains("certificate")
            || format!("{error:?}").to_lowercase().contains("certificate"),
        "without the CA: {error}"
    );

    s3.tls.ca_file = Some(pki.ca());
    let client = s3.client().await.unwrap();
    put(&client, &s3.bucket, &key, b"over TLS".to_vec())
        .await
        .unwrap();
    assert_eq!(
        get(&client, &s3.bucket, &key).await.unwrap().as_deref(),
        Some(&b"over TLS"[..])
    );
    delete(&client, &s3.bucket, &key).await.unwrap();

    s3.tls.cert_file = Some(pki.client_cert());
    s3.tls.key_file = Some(pki.client_key());
    let refused = s3.client().await.err().unwrap();
    assert!(
        refused.to_string().contains("client certificate"),
        "{refused}"
    );
}
