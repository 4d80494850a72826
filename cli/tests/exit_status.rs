//! The exit statuses the README documents (and `archgate --help` lists), each held to a case
//! that produces it, through the binary. Cases held elsewhere are named where they are.

use std::process::Output;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn each_documented_exit_status_comes_from_the_case_the_readme_gives_it() {
    // Given an installation in eu-west-1 with no release yet
    let env = crate::installation().await;
    let run = |args: &[&str], variables: &[(&str, &str)], removed: &[&str]| {
        let mut command = crate::operator(&env);
        command.args(args).envs(variables.iter().copied());
        for name in removed {
            command.env_remove(name);
        }
        command.output().expect("archgate runs")
    };

    // (case, command, extra variables, variables removed, status, what it says)
    let cases: [(&str, &[&str], &[(&str, &str)], &[&str], i32, &str); 8] = [
        ("success", &["release", "list"], &[], &[], 0, ""),
        (
            "a missing ARCHGATE_* variable",
            &["release", "status", "myapp-1.0.0"],
            &[],
            &["ARCHGATE_LEDGER_TABLE"],
            2,
            "ARCHGATE_LEDGER_TABLE",
        ),
        (
            "an invalid ARCHGATE_* variable",
            &["gate", "check", "myapp-1.0.0"],
            &[("ARCHGATE_GATE_MAX_CRITICAL", "several")],
            &[],
            2,
            "ARCHGATE_GATE_MAX_CRITICAL",
        ),
        (
            "an invalid tag",
            &["release", "status", "../etc/passwd"],
            &[],
            &[],
            2,
            "",
        ),
        (
            "clap's usage error",
            &["release", "frobnicate"],
            &[],
            &[],
            2,
            "unrecognized subcommand",
        ),
        (
            "an AWS service failed",
            &["release", "list"],
            &[("ARCHGATE_LEDGER_TABLE", "no-such-table")],
            &[],
            3,
            "DynamoDB Scan was rejected (ResourceNotFoundException)",
        ),
        (
            "the release is not in the ledger",
            &["release", "status", "myapp-1.0.0"],
            &[],
            &[],
            4,
            "no release myapp:myapp-1.0.0 in the ledger",
        ),
        (
            "the release is not in the ledger (gate check)",
            &["gate", "check", "myapp-1.0.0"],
            &[],
            &[],
            4,
            "myapp-1.0.0",
        ),
    ];

    // When each command runs, then it exits with its documented status and says why
    for (case, args, variables, removed, status, says) in cases {
        let output = run(args, variables, removed);
        let said = text(&output);
        assert_eq!(output.status.code(), Some(status), "{case}: {said}");
        assert!(said.contains(says), "{case}: {said}");
    }
    // Held elsewhere: 1 — the gate does not pass (evaluate.rs), `retention apply` refused its
    // release plan (keys_and_expiry.rs), a replayed event failed (replay.rs), `dlq redrive`
    // kept messages (dlq.rs), `release watch` ended failed or blocked (local_loop.rs);
    // 2 — a signing key `local provision` finds unfit, `release verify --key` of a file that
    // is not PEM (keys_and_expiry.rs); 4 — `gate check` of an expired release
    // (keys_and_expiry.rs).
}
