//! The exit statuses the README documents (and `archgate --help` lists), each held to a case
//! that produces it, through the binary. Cases held elsewhere are named where they are.

use crate::text;

/// One documented status and the command that produces it.
struct Case {
    case: &'static str,
    args: &'static [&'static str],
    variables: &'static [(&'static str, &'static str)],
    removed: &'static [&'static str],
    status: i32,
    says: &'static str,
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

    let cases = [
        Case {
            case: "success",
            args: &["release", "list"],
            variables: &[],
            removed: &[],
            status: 0,
            says: "",
        },
        Case {
            case: "a missing ARCHGATE_* variable",
            args: &["release", "status", "myapp-1.0.0"],
            variables: &[],
            removed: &["ARCHGATE_LEDGER_TABLE"],
            status: 2,
            says: "ARCHGATE_LEDGER_TABLE",
        },
        Case {
            case: "an invalid ARCHGATE_* variable",
            args: &["gate", "check", "myapp-1.0.0"],
            variables: &[("ARCHGATE_GATE_MAX_CRITICAL", "several")],
            removed: &[],
            status: 2,
            says: "ARCHGATE_GATE_MAX_CRITICAL",
        },
        Case {
            case: "an invalid tag",
            args: &["release", "status", "../etc/passwd"],
            variables: &[],
            removed: &[],
            status: 2,
            says: "",
        },
        Case {
            case: "clap's usage error",
            args: &["release", "frobnicate"],
            variables: &[],
            removed: &[],
            status: 2,
            says: "unrecognized subcommand",
        },
        Case {
            case: "an AWS service failed",
            args: &["release", "list"],
            variables: &[("ARCHGATE_LEDGER_TABLE", "no-such-table")],
            removed: &[],
            status: 3,
            says: "DynamoDB Scan was rejected (ResourceNotFoundException)",
        },
        Case {
            case: "the release is not in the ledger",
            args: &["release", "status", "myapp-1.0.0"],
            variables: &[],
            removed: &[],
            status: 4,
            says: "no release myapp:myapp-1.0.0 in the ledger",
        },
        Case {
            case: "the release is not in the ledger (gate check)",
            args: &["gate", "check", "myapp-1.0.0"],
            variables: &[],
            removed: &[],
            status: 4,
            says: "myapp-1.0.0",
        },
    ];

    // When each command runs, then it exits with its documented status and says why
    for Case {
        case,
        args,
        variables,
        removed,
        status,
        says,
    } in cases
    {
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
