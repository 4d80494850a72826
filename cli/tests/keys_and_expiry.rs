//! The `archgate` binary on a release whose signing key cannot sign and on one that retention
//! expired, in eu-west-1: `local provision` refuses a key that cannot sign, `release status`
//! says what keeps failing and when the release stalled, `gate check` of an expired release
//! says it expired.

use archgate::config::ReconcilePolicy;
use archgate::config::{RETENTION_KEEP_RELEASES, RETENTION_MAX_DELETE_SHARE, SIGNING_KEY};
use archgate::domain::Phase;
use archgate::ports::{Clock, SystemClock};
use archgate::reconcile::reconcile_all;
use archgate_cli::local::LocalEnv;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use std::process::Output;

const ALIAS: &str = "alias/archgate-releases";
const HOUR: i64 = 3_600_000;

/// Runs `archgate` on the installation, with `overrides` on top of its configuration; the
/// exit status and everything it printed.
fn archgate(env: &LocalEnv, args: &[&str], overrides: &[(&str, &str)]) -> (Option<i32>, String) {
    let output: Output = crate::operator(env)
        .args(args)
        // (`Config::to_env` leaves the signing key out; the deployed functions have it.)
        .envs(env.config.signing_key.iter().map(|key| (SIGNING_KEY, key)))
        .envs(overrides.iter().copied())
        .output()
        .expect("archgate runs");
    (output.status.code(), crate::text(&output))
}

async fn new_key(env: &LocalEnv, spec: KeySpec, usage: KeyUsageType) -> String {
    env.clients
        .kms
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .expect("key metadata")
        .key_id()
        .to_owned()
}

async fn move_alias(env: &LocalEnv, key: &str) {
    env.clients
        .kms
        .update_alias()
        .alias_name(ALIAS)
        .target_key_id(key)
        .send()
        .await
        .expect("UpdateAlias");
}

// Before the fix `local provision` took any existing key as "already there", and every
// release then failed to sign (or, with a disabled key on the emulator, signed unverifiably).
#[tokio::test]
async fn local_provision_refuses_a_signing_key_that_cannot_sign() {
    // Given an installation whose KMS holds an RSA key, a symmetric key, a disabled P-256 key
    // and an enabled P-256 signing key
    let env = crate::installation().await;
    let rsa = new_key(&env, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let symmetric = new_key(
        &env,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let disabled = new_key(&env, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    env.clients
        .kms
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .unwrap();
    let p256 = new_key(&env, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;

    for (key, says) in [
        (rsa.as_str(), "it is a RSA_2048 key"),
        (symmetric.as_str(), "it is a SYMMETRIC_DEFAULT key"),
        (disabled.as_str(), "it is in state Disabled"),
    ] {
        // When `local provision` runs with ARCHGATE_SIGNING_KEY naming it
        let (code, text) = archgate(&env, &["local", "provision"], &[(SIGNING_KEY, key)]);

        // Then it exits 2 (the configuration names the wrong thing) and says why
        assert_eq!(code, Some(2), "{key}: {text}");
        assert!(
            text.contains(key) && text.contains("cannot sign releases") && text.contains(says),
            "{key}: {text}"
        );
    }
    // And the configured alias, moved to the RSA key, is refused the same way
    move_alias(&env, &rsa).await;
    let (code, text) = archgate(&env, &["local", "provision"], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(ALIAS) && text.contains("RSA_2048") && text.contains("ECC_NIST_P256"),
        "{text}"
    );

    // When it names the P-256 key, by id and behind the alias
    move_alias(&env, &p256).await;
    for key in [p256.as_str(), ALIAS] {
        let (code, text) = archgate(&env, &["local", "provision"], &[(SIGNING_KEY, key)]);

        // Then the key is taken as it is
        assert_eq!(code, Some(0), "{key}: {text}");
        assert!(
            text.lines().any(|l| l.starts_with("kms signing key")
                && l.contains(key)
                && l.ends_with("already there")),
            "{key}: {text}"
        );
    }
}

// Before the fix `gate check` read the findings of the deleted images and failed with ECR's
// ImageNotFoundException (exit status 3, an AWS failure).
#[tokio::test]
async fn gate_check_of_an_expired_release_exits_4_and_says_it_expired() {
    // Given two published releases, and retention keeping only the newest
    let env = crate::installation().await;
    for tag in ["myapp-1.0", "myapp-1.1"] {
        let answer = crate::release(&env, tag).await;
        assert_eq!(answer["phase"], "published", "{answer}");
    }
    let config = env.retention_config(&[
        (RETENTION_KEEP_RELEASES, "1"),
        (RETENTION_MAX_DELETE_SHARE, "1"),
    ]);
    archgate::retention::run(
        &env.clients.retention(config),
        archgate::retention::Request::default(),
    )
    .await;
    let expired = env.release("myapp-1.0").await.unwrap().unwrap().release;
    assert_eq!(expired.phase(), Phase::Expired);

    // When the gate of the expired release is checked
    let (code, text) = archgate(&env, &["gate", "check", "myapp-1.0"], &[]);

    // Then it exits 4 and says the release expired, with no AWS error
    assert_eq!(code, Some(4), "{text}");
    assert!(
        text.contains("myapp-1.0") && text.contains("expired by retention"),
        "{text}"
    );
    assert!(text.contains("its images are gone"), "{text}");
    assert!(
        !text.contains("ImageNotFound") && !text.contains("ECR") && !text.contains("failed"),
        "{text}"
    );
    // And the release retention kept still passes
    let (code, text) = archgate(&env, &["gate", "check", "myapp-1.1"], &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("gate: pass"), "{text}");
}

#[tokio::test]
async fn release_status_shows_what_keeps_failing_and_then_the_stall() {
    // Given the installation's signing key is disabled, and a release whose gate passed
    let env = crate::installation().await;
    let key = env
        .clients
        .kms
        .describe_key()
        .key_id(ALIAS)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    env.clients
        .kms
        .disable_key()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let tag = "myapp-6.0";
    let answer = crate::release(&env, tag).await;
    assert_eq!(
        answer["error_type"], "Archgate.SigningKeyUnusable",
        "{answer}"
    );
    // and a reconciler pass tried the signing again
    archgate(&env, &["reconcile"], &[]);

    // When its status is asked
    let (code, status) = archgate(&env, &["release", "status", tag], &[]);

    // Then it shows the owed signing failing: the effect, the tries, the error
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("candidate_ready, attempt 1"), "{status}");
    let failing = status
        .lines()
        .find(|l| l.starts_with("failing  sign the provenance and the verdict: "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(failing.contains("2 tries since"), "{failing}");
    assert!(
        failing.contains("Archgate.SigningKeyUnusable")
            && failing.contains(ALIAS)
            && failing.contains("it is in state Disabled"),
        "{failing}"
    );
    assert!(!status.contains("stalled  "), "{status}");

    // When the reconciler runs past the deadline
    let policy = ReconcilePolicy {
        stale_after_ms: 15 * 60_000,
        deadline_ms: 6 * HOUR,
    };
    reconcile_all(
        &env.pipeline,
        policy,
        SystemClock.now_millis() + 7 * HOUR,
        false,
    )
    .await
    .unwrap();

    // Then the status shows the stall, and the release is still waiting, not failed
    let (code, status) = archgate(&env, &["release", "status", tag], &[]);
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("candidate_ready, attempt 1"), "{status}");
    let stalled = status
        .lines()
        .find(|l| l.starts_with("stalled  "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        stalled.contains("passed its gate")
            && stalled.contains("more than 6 hours")
            && stalled.contains("published as soon as the fault clears"),
        "{stalled}"
    );
    assert!(status.contains("failing  sign the provenance"), "{status}");

    // When the key is enabled again and the reconciler runs
    env.clients
        .kms
        .enable_key()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let (code, pass) = archgate(&env, &["reconcile"], &[]);
    assert_eq!(code, Some(0), "{pass}");

    // Then the release is published and nothing is failing any more
    let (_, status) = archgate(&env, &["release", "status", tag], &[]);
    assert!(status.contains("published, attempt 1"), "{status}");
    assert!(!status.contains("failing  "), "{status}");
}

// Before the fix `retention apply` printed the refusal and exited 0, though the README says a
// refused plan exits 1.
#[tokio::test]
async fn retention_apply_exits_1_when_the_safety_valve_refuses_the_release_plan() {
    // Given two published releases
    let env = crate::installation().await;
    for tag in ["myapp-1.0", "myapp-1.1"] {
        let answer = crate::release(&env, tag).await;
        assert_eq!(answer["phase"], "published", "{answer}");
    }

    // When retention is applied keeping one release, with a valve that allows less than half
    let repository = env.config.repository.clone();
    let (code, text) = archgate(
        &env,
        &[
            "retention",
            "apply",
            "--repository",
            &repository,
            "--keep-releases",
            "1",
            "--max-delete-share",
            "0.4",
        ],
        &[],
    );

    // Then it says the release plan was refused, exits 1, and expired nothing
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("releases refused: safety valve"), "{text}");
    let kept = env.release("myapp-1.0").await.unwrap().unwrap().release;
    assert_eq!(kept.phase(), Phase::Published);
}

// Before the fix a --key file that is not PEM was refused as the release's failure (exit 1)
// with the decoder's words about a "NUL byte" the file did not contain.
#[tokio::test]
async fn verify_with_a_key_file_that_is_not_pem_is_a_usage_error_that_says_so() {
    // Given a key file holding DER bytes, not PEM
    let env = crate::installation().await;
    let path = std::env::temp_dir().join(format!("archgate-key-{}.der", std::process::id()));
    std::fs::write(&path, [0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86]).unwrap();

    // When a release is verified with it
    let key = path.display().to_string();
    let (code, text) = archgate(
        &env,
        &["release", "verify", "myapp-1.0", "--key", &key],
        &[],
    );
    let _ = std::fs::remove_file(&path);

    // Then it is a usage error (exit 2) that says the file is not a PEM public key
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is not a PEM public key"), "{text}");
    assert!(!text.contains("NUL"), "{text}");
}
