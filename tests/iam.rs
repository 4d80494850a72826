//! Least privilege, enforced. Each function's role (template.yaml) is proven twice:
//!
//! - by its actions, on the emulator that enforces IAM: moto checks each request's signature
//!   and its caller's policies once its unsigned set-up calls are spent
//!   (`INITIAL_NO_AUTH_ACTION_COUNT`). It matches actions, not resources (most services'
//!   requests are matched against `*`), so each function runs its real paths as a user whose
//!   policy allows exactly the actions its role grants, on `*`: everything archgate does is
//!   allowed, and a path whose action is taken away is denied. moto's denials come as IAM's
//!   XML even from JSON services such as ECR (the real ones answer `AccessDeniedException` in
//!   the service's protocol), so the SDK sees an unreadable 403, read raw here.
//! - by its resources, without the emulator: the role's statements, as CloudFormation deploys
//!   them, are evaluated against the ARN of every call of every path ([`PATHS`]): inside the
//!   namespace and the default repository, the ledger, the bus and the keys allowed, anything
//!   else denied. The builds' role is evaluated so too (the uploads it reads, the
//!   repositories it pushes to); CodeBuild runs the builds, not the emulator.
//!
//! The two meet: every call a function made on the emulator is one its paths list.

use crate::template::{
    allowed_by, allows, deployed_actions, deployed_environment, deployed_statements,
};
use archgate::aws::{CallLog, Clients, DynamoLedger};
use archgate::config::{ReconcilePolicy, RetentionConfig};
use archgate::domain::release::Service;
use archgate::domain::ReleaseTag;
use archgate::domain::{Arch, BuildRole, Digest, ManifestMode, Phase, Release, ReleaseKey};
use archgate::ports::{Ledger, ShiftedClock};
use archgate::Config;
use archgate_integration_tests::sample;
use archgate_testkit::builder::{self, EventTemplate, ImageShape};
use archgate_testkit::emulator::{self, Emulator, UserKeys, ENFORCE_IAM_AFTER};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = emulator::ACCOUNT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforcing_emulator_allows_what_a_policy_grants_and_denies_the_rest() {
    // Given an emulator that enforces IAM after the three calls that create a user who may
    // only describe ECR repositories
    let moto = Emulator::start_with(&[(ENFORCE_IAM_AFTER, "3")])
        .unwrap_or_else(|e| panic!("the local AWS emulator is required for this test: {e}"));
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:DescribeRepositories","Resource":"*"}]}"#;
    let user = emulator::create_user_with_policy(moto.endpoint(), "archgate-reader", policy)
        .expect("the user is created while the emulator lets calls through");
    let ecr =
        aws_sdk_ecr::Client::new(&emulator::sdk_config_as(moto.endpoint(), REGION, &user).await);

    // When the user describes the repositories, then that is allowed
    let described = ecr.describe_repositories().send().await;
    assert!(described.is_ok(), "{described:?}");

    // When the user creates a repository, then IAM denies it
    let created = ecr
        .create_repository()
        .repository_name("apps/web")
        .send()
        .await;
    let error = created.expect_err("CreateRepository is not in the user's policy");
    assert_denied(error.raw_response(), "ecr:CreateRepository");

    // And a caller without credentials the emulator knows is refused too
    let stranger =
        aws_sdk_ecr::Client::new(&emulator::sdk_config_in(moto.endpoint(), REGION).await);
    assert!(stranger.describe_repositories().send().await.is_err());
}

/// The emulator's answer was IAM's denial of `action` (read raw: see the module's notes).
fn assert_denied(answer: Option<&aws_smithy_runtime_api::http::Response>, action: &str) {
    let answer = answer.expect("the emulator answered");
    let body = String::from_utf8_lossy(answer.body().bytes().unwrap_or_default()).into_owned();
    assert_eq!(answer.status().as_u16(), 403, "{body}");
    assert!(
        body.contains(&format!("is not authorized to perform: {action}")),
        "{body}"
    );
}

// ------------------------------------------------------------------ what each path calls

/// What a call names: the resource IAM authorises it against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// The ledger table.
    Ledger,
    /// The release's repository: the default one, or one of the namespace's.
    Repository,
    /// A repository of the namespace, created on its first release (never the default).
    NewRepository,
    /// A repository retention cleans (its configured names and `prefix/*` patterns).
    RetainedRepository,
    /// The registry's repositories, listed to resolve `prefix/*` patterns.
    RepositoryListing,
    /// A CodeBuild project of archgate's.
    Project(BuildRole),
    /// archgate's event bus.
    Bus,
    /// The key that signs the attestations.
    SigningKey,
    /// The key the namespace's repositories are encrypted with: ECR uses it on behalf of the
    /// caller that creates one.
    RepositoryKey,
    /// Nothing: the action takes no resource (IAM authorises it against `*` alone).
    NoResource,
    /// The listing of one ECS cluster's services or tasks (`*`, with the cluster as the
    /// condition key `ecs:cluster`).
    ClusterListing,
    /// An upload in the source bucket, under the watched prefix.
    Upload,
    /// A stream of the log group of a build's project.
    BuildLog(BuildRole),
    /// An ECS service, task, or Lambda function of the account in the region.
    EcsService,
    EcsTask,
    LambdaFunction,
}

use On::*;

/// One path of one function (or of the builds): what happens, and each call it makes.
struct Path {
    /// The logical id in template.yaml of the function, or of the builds' role.
    function: &'static str,
    path: &'static str,
    calls: &'static [(&'static str, On)],
}

const AMD64: On = Project(BuildRole::Amd64);
const ARM64: On = Project(BuildRole::Arm64);
const MANIFEST: On = Project(BuildRole::Manifest);

/// The calls a promotion makes (scan-gate's, and build-completed's or the reconciler's when
/// the scans came first): the index's children read, the moving tags locked, two signed
/// attestations pushed as referrers (blobs, then manifests), the index tagged, announced.
const PROMOTION: &[(&str, On)] = &[
    ("ecr:BatchGetImage", Repository),
    ("dynamodb:UpdateItem", Ledger),
    ("dynamodb:GetItem", Ledger),
    ("kms:DescribeKey", SigningKey),
    ("kms:Sign", SigningKey),
    ("ecr:BatchCheckLayerAvailability", Repository),
    ("ecr:InitiateLayerUpload", Repository),
    ("ecr:UploadLayerPart", Repository),
    ("ecr:CompleteLayerUpload", Repository),
    ("ecr:PutImage", Repository),
    ("dynamodb:PutItem", Ledger),
    ("events:PutEvents", Bus),
];

/// Every path of every function, and the calls it makes: the table both proofs read.
const PATHS: &[Path] = &[
    Path {
        function: "StartBuildsFunction",
        path: "an upload starts its release: the namespace's repository made on first use, both builds",
        calls: &[
            ("dynamodb:GetItem", Ledger),
            ("ecr:CreateRepository", NewRepository),
            // what ECR asks of whoever creates a repository encrypted with a KMS key
            ("kms:DescribeKey", RepositoryKey),
            ("kms:CreateGrant", RepositoryKey),
            ("kms:RetireGrant", RepositoryKey),
            ("codebuild:StartBuild", AMD64),
            ("codebuild:StartBuild", ARM64),
            ("dynamodb:PutItem", Ledger),
            ("events:PutEvents", Bus),
        ],
    },
    Path {
        function: "StartBuildsFunction",
        path: "an upload naming no repository of archgate's is announced as rejected",
        calls: &[("events:PutEvents", Bus)],
    },
    Path {
        function: "StartBuildsFunction",
        path: "a delivery takes over build work: a failed release's sibling stopped, the manifest build started",
        calls: &[
            ("dynamodb:GetItem", Ledger),
            ("codebuild:StopBuild", AMD64),
            ("codebuild:StopBuild", ARM64),
            ("codebuild:StartBuild", MANIFEST),
            ("dynamodb:PutItem", Ledger),
        ],
    },
    Path {
        function: "BuildCompletedFunction",
        path: "both builds completed: the candidate index assembled and published (native)",
        calls: &[
            ("dynamodb:GetItem", Ledger),
            ("ecr:BatchGetImage", Repository),
            ("ecr:PutImage", Repository),
            ("dynamodb:UpdateItem", Ledger),
            ("dynamodb:PutItem", Ledger),
            ("events:PutEvents", Bus),
        ],
    },
    Path {
        function: "BuildCompletedFunction",
        path: "a build's event lacks its release's variables: the build is read from CodeBuild",
        calls: &[
            ("codebuild:BatchGetBuilds", AMD64),
            ("codebuild:BatchGetBuilds", ARM64),
            ("codebuild:BatchGetBuilds", MANIFEST),
        ],
    },
    Path {
        function: "BuildCompletedFunction",
        path: "codebuild mode: the manifest build started, then the index it pushed resolved",
        calls: &[
            ("dynamodb:GetItem", Ledger),
            ("codebuild:StartBuild", MANIFEST),
            ("ecr:BatchGetImage", Repository),
            ("dynamodb:UpdateItem", Ledger),
            ("dynamodb:PutItem", Ledger),
        ],
    },
    Path {
        function: "BuildCompletedFunction",
        path: "build work taken over: a failed build's sibling stopped, an owed build started in its repository",
        calls: &[
            ("codebuild:StopBuild", AMD64),
            ("codebuild:StopBuild", ARM64),
            ("ecr:CreateRepository", NewRepository),
            ("kms:DescribeKey", RepositoryKey),
            ("kms:CreateGrant", RepositoryKey),
            ("kms:RetireGrant", RepositoryKey),
            ("codebuild:StartBuild", AMD64),
            ("codebuild:StartBuild", ARM64),
        ],
    },
    Path {
        function: "BuildCompletedFunction",
        path: "the scans came first: the candidate is promoted with signed attestations",
        calls: PROMOTION,
    },
    Path {
        function: "ScanGateFunction",
        path: "a scan judged: the image's release found, its findings read, the verdict recorded",
        calls: &[
            ("dynamodb:GetItem", Ledger),
            ("ecr:DescribeImageScanFindings", Repository),
            ("dynamodb:PutItem", Ledger),
            ("events:PutEvents", Bus),
        ],
    },
    Path {
        function: "ScanGateFunction",
        path: "every image passed: promotion with signed attestations",
        calls: PROMOTION,
    },
    Path {
        function: "ReconcilerFunction",
        path: "stale releases re-read: the ledger, their builds, their images' findings",
        calls: &[
            ("dynamodb:Scan", Ledger),
            ("codebuild:BatchGetBuilds", AMD64),
            ("codebuild:BatchGetBuilds", ARM64),
            ("codebuild:BatchGetBuilds", MANIFEST),
            ("ecr:DescribeImageScanFindings", Repository),
            ("events:PutEvents", Bus),
        ],
    },
    Path {
        function: "ReconcilerFunction",
        path: "the work a lost event left taken over: builds, the repository, the candidate",
        calls: &[
            ("dynamodb:GetItem", Ledger),
            ("ecr:CreateRepository", NewRepository),
            ("kms:DescribeKey", RepositoryKey),
            ("kms:CreateGrant", RepositoryKey),
            ("kms:RetireGrant", RepositoryKey),
            ("codebuild:StartBuild", AMD64),
            ("codebuild:StartBuild", ARM64),
            ("codebuild:StartBuild", MANIFEST),
            ("codebuild:StopBuild", AMD64),
            ("codebuild:StopBuild", ARM64),
            ("ecr:BatchGetImage", Repository),
            ("ecr:PutImage", Repository),
            ("dynamodb:UpdateItem", Ledger),
            ("dynamodb:PutItem", Ledger),
            ("events:PutEvents", Bus),
        ],
    },
    Path {
        function: "ReconcilerFunction",
        path: "verdicts read: promotion with signed attestations",
        calls: PROMOTION,
    },
    Path {
        function: "RetentionCleanupFunction",
        path: "each retained repository inventoried and cleaned, in-flight releases kept, reported",
        calls: &[
            ("ecr:DescribeRepositories", RepositoryListing),
            ("ecr:DescribeImages", RetainedRepository),
            ("ecr:BatchGetImage", RetainedRepository),
            ("ecr:BatchDeleteImage", RetainedRepository),
            ("dynamodb:Scan", Ledger),
            ("events:PutEvents", Bus),
        ],
    },
    Path {
        function: "RetentionCleanupFunction",
        path: "an expired release marked in the ledger (read again after a conflict)",
        calls: &[("dynamodb:GetItem", Ledger), ("dynamodb:PutItem", Ledger)],
    },
    Path {
        function: "RetentionCleanupFunction",
        path: "each repository's policy read, and where the next scheduled run starts",
        calls: &[("dynamodb:GetItem", Ledger), ("dynamodb:PutItem", Ledger)],
    },
    Path {
        function: "RetentionCleanupFunction",
        path: "the images workloads name: ECS task definitions, services, tasks; Lambda functions",
        calls: &[
            ("ecs:ListClusters", NoResource),
            ("ecs:ListTaskDefinitions", NoResource),
            ("ecs:DescribeTaskDefinition", NoResource),
            ("ecs:ListServices", ClusterListing),
            ("ecs:DescribeServices", EcsService),
            ("ecs:ListTasks", ClusterListing),
            ("ecs:DescribeTasks", EcsTask),
            ("lambda:ListFunctions", NoResource),
            ("lambda:GetFunction", LambdaFunction),
        ],
    },
    Path {
        function: BUILDS,
        path: "a build reads its upload, logs, logs in to the registry and pushes its image and cache",
        calls: &[
            ("s3:GetObject", Upload),
            ("s3:GetObjectVersion", Upload),
            ("logs:CreateLogStream", BuildLog(BuildRole::Amd64)),
            ("logs:PutLogEvents", BuildLog(BuildRole::Amd64)),
            ("logs:CreateLogStream", BuildLog(BuildRole::Arm64)),
            ("logs:PutLogEvents", BuildLog(BuildRole::Arm64)),
            ("ecr:GetAuthorizationToken", NoResource),
            ("ecr:BatchGetImage", Repository),
            ("ecr:GetDownloadUrlForLayer", Repository),
            ("ecr:BatchCheckLayerAvailability", Repository),
            ("ecr:InitiateLayerUpload", Repository),
            ("ecr:UploadLayerPart", Repository),
            ("ecr:CompleteLayerUpload", Repository),
            ("ecr:PutImage", Repository),
        ],
    },
    Path {
        function: BUILDS,
        path: "the manifest build (codebuild mode) reads both images and pushes the index",
        calls: &[
            ("logs:CreateLogStream", BuildLog(BuildRole::Manifest)),
            ("logs:PutLogEvents", BuildLog(BuildRole::Manifest)),
            ("ecr:GetAuthorizationToken", NoResource),
            ("ecr:BatchGetImage", Repository),
            ("ecr:BatchCheckLayerAvailability", Repository),
            ("ecr:PutImage", Repository),
        ],
    },
];

/// The role CodeBuild runs every build of archgate's with.
const BUILDS: &str = "BuildProjectRole";

/// The functions, by logical id.
const FUNCTIONS: [&str; 5] = [
    "StartBuildsFunction",
    "BuildCompletedFunction",
    "ScanGateFunction",
    "ReconcilerFunction",
    "RetentionCleanupFunction",
];

/// The deployment both proofs are about: a namespace (`apps/`) whose repositories are
/// encrypted with a key of their own, signed attestations, and retention of the default
/// repository and the namespace's.
const NAMESPACED: &[(&str, &str)] = &[
    ("RepositoryPrefix", "apps/"),
    (
        "RepositoryKmsKeyArn",
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ),
    (
        "SigningKeyArn",
        "arn:aws:kms:eu-west-1:123456789012:key/5678efab-56ef-78ab-90cd-567890abcdef",
    ),
    ("RetentionRepositories", "myapp,apps/*"),
];

/// The defaults (one repository, no namespace), attestations signed.
const SINGLE_REPOSITORY: &[(&str, &str)] = &[(
    "SigningKeyArn",
    "arn:aws:kms:eu-west-1:123456789012:key/5678efab-56ef-78ab-90cd-567890abcdef",
)];

// ------------------------------------------------------------------ resources (no emulator)

/// One request: an ARN, and the condition keys it carries.
struct Request {
    resource: String,
    context: Vec<(&'static str, String)>,
}

impl Request {
    fn context(&self) -> Vec<(&str, &str)> {
        self.context.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn on(resource: String) -> Request {
    Request {
        resource,
        context: Vec::new(),
    }
}

/// The requests a call on `target` makes in a deployment whose function has `environment`
/// (inside: what archgate names), and requests archgate never makes that the role must not
/// allow (outside).
fn requests(target: On, environment: &BTreeMap<String, String>) -> (Vec<Request>, Vec<Request>) {
    let variable = |name: &str| environment.get(name).cloned().unwrap_or_default();
    let arn =
        |service: &str, resource: &str| format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}");
    let elsewhere =
        |service: &str, resource: &str| format!("arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}");
    let repository = |name: &str| arn("ecr", &format!("repository/{name}"));
    let project = |role: BuildRole| match role {
        BuildRole::Amd64 => variable("ARCHGATE_AMD64_PROJECT"),
        BuildRole::Arm64 => variable("ARCHGATE_ARM64_PROJECT"),
        BuildRole::Manifest => variable("ARCHGATE_MANIFEST_PROJECT"),
    };
    let namespace = variable("ARCHGATE_REPOSITORY_PREFIX");
    let default = variable("ARCHGATE_REPOSITORY");
    // Names that only look like the namespace's, or are another team's
    let strangers = ["teams/web", "appsweb", "apps", "myapp2"].map(repository);
    let key = |variable_name: &str| Some(variable(variable_name)).filter(|k| !k.is_empty());
    let another_key = arn("kms", "key/9999aaaa-99aa-99aa-99aa-999999999999");
    let (inside, outside): (Vec<String>, Vec<String>) = match target {
        Ledger => {
            let table = variable("ARCHGATE_LEDGER_TABLE");
            (
                vec![arn("dynamodb", &format!("table/{table}"))],
                vec![
                    arn("dynamodb", "table/another-table"),
                    elsewhere("dynamodb", &format!("table/{table}")),
                ],
            )
        }
        Repository => {
            let mut inside = vec![repository(&default)];
            let mut outside = strangers.to_vec();
            outside.push(elsewhere("ecr", &format!("repository/{default}")));
            if namespace.is_empty() {
                outside.push(repository("apps/web"));
            } else {
                inside.push(repository(&format!("{namespace}web")));
                inside.push(repository(&format!("{namespace}team/api")));
            }
            (inside, outside)
        }
        NewRepository => {
            let mut outside = strangers.to_vec();
            // the default repository is the template's: archgate never creates it
            outside.push(repository(&default));
            if namespace.is_empty() {
                outside.push(repository("apps/web"));
                (Vec::new(), outside)
            } else {
                outside.push(elsewhere("ecr", &format!("repository/{namespace}web")));
                (vec![repository(&format!("{namespace}web"))], outside)
            }
        }
        RetainedRepository => {
            let config = retention_config(environment);
            // `prefix/*` stands for the repositories under it; a name for itself
            let mut inside: Vec<String> = config
                .repositories
                .iter()
                .map(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => repository(&format!("{prefix}web")),
                    None => repository(pattern),
                })
                .collect();
            // With a namespace, the repositories under it archgate manages (releases in the
            // ledger) are cleaned too, whatever RetentionRepositories names.
            if !namespace.is_empty() {
                inside.push(repository(&format!("{namespace}api")));
            }
            let outside = strangers
                .iter()
                .chain(&[repository("apps/web")])
                .filter(|arn| !inside.contains(arn))
                .cloned()
                .collect();
            (inside, outside)
        }
        RepositoryListing => {
            let config = retention_config(environment);
            let patterns = config.repositories.iter().any(|r| r.ends_with('*'));
            let listing = patterns.then(|| repository("*")).into_iter().collect();
            (listing, vec![elsewhere("ecr", "repository/*")])
        }
        Project(role) => {
            let name = project(role);
            (
                vec![arn("codebuild", &format!("project/{name}"))],
                vec![
                    arn("codebuild", "project/another-project"),
                    elsewhere("codebuild", &format!("project/{name}")),
                ],
            )
        }
        Bus => {
            let bus = variable("ARCHGATE_EVENT_BUS");
            (
                vec![arn("events", &format!("event-bus/{bus}"))],
                vec![
                    arn("events", "event-bus/default"),
                    elsewhere("events", &format!("event-bus/{bus}")),
                ],
            )
        }
        SigningKey => (
            key("ARCHGATE_SIGNING_KEY").into_iter().collect(),
            vec![another_key],
        ),
        RepositoryKey => (
            key("ARCHGATE_REPOSITORY_KMS_KEY")
                .filter(|_| !namespace.is_empty())
                .into_iter()
                .collect(),
            vec![another_key],
        ),
        Upload => {
            let (bucket, prefix) = (
                variable("ARCHGATE_SOURCE_BUCKET"),
                variable("ARCHGATE_SOURCE_PREFIX"),
            );
            let object = |bucket: &str, key: &str| format!("arn:aws:s3:::{bucket}/{key}");
            (
                vec![
                    object(&bucket, &format!("{prefix}apps/web/web-1.4.2.zip")),
                    object(&bucket, &format!("{prefix}myapp-1.4.2.zip")),
                ],
                vec![
                    object(&bucket, "elsewhere/myapp-1.4.2.zip"),
                    object("another-bucket", &format!("{prefix}myapp-1.4.2.zip")),
                ],
            )
        }
        // CloudWatch Logs authorises a build's stream writes against the stream's ARN
        BuildLog(role) => {
            let stream = |project: &str| {
                arn(
                    "logs",
                    &format!("log-group:/aws/codebuild/{project}:log-stream:0123abcd"),
                )
            };
            (
                vec![stream(&project(role))],
                vec![stream("another-project")],
            )
        }
        NoResource => (vec!["*".to_owned()], Vec::new()),
        ClusterListing => {
            let listing = |cluster: String| Request {
                resource: "*".to_owned(),
                context: vec![("ecs:cluster", cluster)],
            };
            return (
                vec![listing(arn("ecs", "cluster/prod"))],
                vec![listing(elsewhere("ecs", "cluster/prod"))],
            );
        }
        EcsService => (
            vec![arn("ecs", "service/prod/web")],
            vec![elsewhere("ecs", "service/prod/web")],
        ),
        EcsTask => (
            vec![arn("ecs", "task/prod/0123456789abcdef0")],
            vec![elsewhere("ecs", "task/prod/0123456789abcdef0")],
        ),
        LambdaFunction => (
            vec![
                arn("lambda", "function:web"),
                arn("lambda", "function:web:3"),
            ],
            vec![elsewhere("lambda", "function:web")],
        ),
    };
    (
        inside.into_iter().map(on).collect(),
        outside.into_iter().map(on).collect(),
    )
}

fn retention_config(environment: &BTreeMap<String, String>) -> RetentionConfig {
    RetentionConfig::from_lookup(|name| environment.get(name).cloned())
        .unwrap_or_else(|e| panic!("retention's deployed configuration: {e}"))
}

#[test]
fn each_path_is_allowed_on_what_it_names_and_denied_outside_the_namespace() {
    for (deployment, parameters) in [
        (
            "a namespace apps/ with its key, signed, retaining myapp and apps/*",
            NAMESPACED,
        ),
        ("one repository, signed", SINGLE_REPOSITORY),
    ] {
        let mut problems = Vec::new();
        let mut checked = 0;
        for path in PATHS {
            // Given the function's statements and environment as this deployment deploys them
            let statements = deployed_statements(path.function, parameters);
            // (a build works on what start-builds names: its bucket, repository, projects)
            let configured = if path.function == BUILDS {
                "StartBuildsFunction"
            } else {
                path.function
            };
            let environment: BTreeMap<String, String> =
                deployed_environment(configured, parameters)
                    .into_iter()
                    .collect();
            for (action, target) in path.calls {
                // When each call is evaluated on what the function names, and on what it
                // does not
                let (inside, outside) = requests(*target, &environment);

                // Then the first are allowed, the others denied
                for request in &inside {
                    checked += 1;
                    if !allows(&statements, action, &request.resource, &request.context()) {
                        problems.push(format!(
                            "{}, {}: {action} on {} {:?} is denied",
                            path.function, path.path, request.resource, request.context
                        ));
                    }
                }
                for request in &outside {
                    checked += 1;
                    let allowed =
                        allowed_by(&statements, action, &request.resource, &request.context());
                    if let Some(sid) = allowed {
                        problems.push(format!(
                            "{}, {}: {action} on {} {:?} (outside) is allowed by {sid}",
                            path.function, path.path, request.resource, request.context
                        ));
                    }
                }
            }
        }
        assert!(checked > 100, "{deployment}: only {checked} requests");
        assert!(
            problems.is_empty(),
            "{deployment}:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn every_action_a_role_grants_is_called_by_one_of_its_paths() {
    // Given each function's actions, and the builds', as the namespaced deployment grants
    // them (every conditional statement on)
    for function in FUNCTIONS.into_iter().chain([BUILDS]) {
        let granted = deployed_actions(function, NAMESPACED);
        // Then each is some path's call: nothing granted that no path of the table uses
        let called: BTreeSet<String> = PATHS
            .iter()
            .filter(|p| p.function == function)
            .flat_map(|p| p.calls.iter().map(|(action, _)| (*action).to_owned()))
            .collect();
        let unused: Vec<&String> = granted.difference(&called).collect();
        assert!(
            unused.is_empty(),
            "{function} grants {unused:?}, which no path calls"
        );
        // And each call of its paths is granted
        let missing: Vec<&String> = called.difference(&granted).collect();
        assert!(
            missing.is_empty(),
            "{function}'s paths call {missing:?}, not granted"
        );
    }
}

// ------------------------------------------------------------------ actions (the emulator)

/// An installation on an emulator that enforces IAM. An administrator (policy `*`) sets it up
/// and plays what AWS and the builds do (uploads, pushes, scans); each function runs as a
/// user of its own, every call counted.
struct Enforcing {
    moto: Emulator,
    config: Config,
    admin: Clients,
    /// Every user's keys, the administrator's too, by name.
    keys: BTreeMap<String, UserKeys>,
    /// The functions' users' clients, and the calls each made.
    users: BTreeMap<String, (Clients, CallLog)>,
}

/// A policy allowing `actions` on every resource (the emulator judges actions only).
fn policy(actions: &BTreeSet<String>) -> String {
    json!({"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
    .to_string()
}

impl Enforcing {
    /// Creates the administrator and `users` (name, actions): the emulator lets exactly those
    /// calls through unsigned, then enforces IAM on every other. Then the administrator
    /// provisions a deployment whose namespace is `apps/`, encrypted with a key of its own,
    /// whose gate accepts [`ALLOWLISTED`].
    async fn start(users: &[(&str, BTreeSet<String>)]) -> Self {
        let admin_policy = json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string();
        let mut policies = vec![("archgate-admin".to_owned(), admin_policy)];
        policies.extend(
            users
                .iter()
                .map(|(name, actions)| ((*name).to_owned(), policy(actions))),
        );
        // Three unsigned IAM calls per user (CreateUser, PutUserPolicy, CreateAccessKey)
        let unsigned = (3 * policies.len()).to_string();
        let moto = Emulator::start_with(&[(ENFORCE_IAM_AFTER, &unsigned)])
            .unwrap_or_else(|e| panic!("the local AWS emulator is required for this test: {e}"));
        let mut keys = BTreeMap::new();
        let mut users = BTreeMap::new();
        for (name, policy) in &policies {
            let user = emulator::create_user_with_policy(moto.endpoint(), name, policy)
                .unwrap_or_else(|e| panic!("user {name}: {e}"));
            let calls = CallLog::default();
            let sdk = emulator::sdk_config_as(moto.endpoint(), REGION, &user).await;
            users.insert(
                name.clone(),
                (Clients::with_call_log(&sdk, calls.clone()), calls),
            );
            keys.insert(name.clone(), user);
        }
        let admin_sdk =
            emulator::sdk_config_as(moto.endpoint(), REGION, &keys["archgate-admin"]).await;
        let (admin, _) = users.remove("archgate-admin").expect("created above");
        let namespace_key = admin
            .kms
            .create_key()
            .description("the namespace's repositories")
            .send()
            .await
            .expect("CreateKey as the administrator")
            .key_metadata()
            .map(|m| m.arn().unwrap_or_default().to_owned())
            .expect("a key");
        let allowlist =
            json!([{"id": ALLOWLISTED, "expires": "2999-12-31", "reason": "not reachable"}])
                .to_string();
        // Two moving tags: too many for ECR's exclusion filters, so the namespace's
        // repositories are created mutable (moto cannot push to IMMUTABLE_WITH_EXCLUSION)
        let config = archgate_cli::local::config_with(
            ManifestMode::Native,
            &[
                (archgate::config::REPOSITORY_PREFIX, "apps/"),
                (archgate::config::REPOSITORY_KMS_KEY, &namespace_key),
                (archgate::config::MOVING_TAGS, "latest,stable"),
                (archgate::config::GATE_ALLOWLIST, &allowlist),
            ],
        );
        archgate_cli::provision::provision(&admin_sdk, &config)
            .await
            .expect("the administrator provisions the deployment");
        Enforcing {
            moto,
            config,
            admin,
            keys,
            users,
        }
    }

    /// The clients of a function's user, counting its calls.
    fn clients_of(&self, user: &str) -> Clients {
        self.users[user].0.clone()
    }

    /// The pipeline as a function runs it: its user's clients, the effects its role allows.
    fn pipeline_of(
        &self,
        user: &str,
        performs: &'static [Service],
    ) -> archgate::wiring::AwsPipeline {
        self.clients_of(user)
            .pipeline(&self.config)
            .performing(performs)
    }

    /// The `service:Action` of every call a user made.
    fn actions_called(&self, user: &str) -> BTreeSet<String> {
        self.users[user]
            .1
            .take()
            .iter()
            .map(|call| iam_action(call))
            .collect()
    }

    /// An upload of a build context, and the event S3 sends for it.
    async fn upload(&self, key: &str) -> Value {
        let admin =
            emulator::sdk_config_as(self.moto.endpoint(), REGION, &self.keys["archgate-admin"]);
        let put = emulator::s3_client(&admin.await)
            .put_object()
            .bucket(&self.config.source_bucket)
            .key(key)
            .body(archgate_cli::local::sample_build_context("app").into())
            .send()
            .await
            .expect("the upload");
        let mut event = sample("s3-object-created.json");
        event["region"] = json!(REGION);
        // S3 stamps each upload with its time and a sequencer that grows per key
        let now = time::OffsetDateTime::now_utc();
        event["time"] = json!(now
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time"));
        event["detail"]["object"]["sequencer"] =
            json!(format!("{:020X}", now.unix_timestamp_nanos()));
        event["resources"] = json!([format!("arn:aws:s3:::{}", self.config.source_bucket)]);
        let object = &mut event["detail"]["object"];
        object["key"] = json!(key);
        object["etag"] = json!(put.e_tag().unwrap_or_default().trim_matches('"'));
        object["version-id"] = json!(put.version_id().unwrap_or_default());
        event["detail"]["bucket"]["name"] = json!(self.config.source_bucket);
        event
    }

    async fn record(&self, key: &ReleaseKey) -> Release {
        DynamoLedger::new(self.admin.dynamodb.clone(), &self.config.ledger_table)
            .load(key)
            .await
            .expect("the ledger, read by the administrator")
            .unwrap_or_else(|| panic!("no release {key}"))
            .release
    }

    /// Plays both builds of a release: each pushes its image; the events CodeBuild sends.
    async fn builds_finished(&self, key: &ReleaseKey) -> Vec<Value> {
        let release = self.record(key).await;
        let mut events = Vec::new();
        for arch in Arch::ALL {
            let role = BuildRole::arch(arch);
            let pushed = builder::push_arch_image(
                &self.admin.ecr,
                &key.repository,
                &key.tag,
                arch,
                release.source.revision(),
                ImageShape::Manifest,
            )
            .await
            .expect("the build pushes its image");
            let environment = archgate::pipeline::build_request(&self.config, &release, role)
                .expect("the build's request")
                .environment;
            let template = match arch {
                Arch::Amd64 => EventTemplate::Amd64,
                Arch::Arm64 => EventTemplate::Arm64,
            };
            let build_id = release.build(role).build_id.clone().expect("started");
            let project = self.config.project_for(role).expect("an arch project");
            let event = builder::state_change_event(
                template,
                project,
                &build_id,
                "SUCCEEDED",
                &environment,
            );
            events.push(builder::with_exported(
                event,
                &builder::exported_by_build(arch, &pushed.digest),
            ));
        }
        events
    }

    /// Plays ECR's scan-on-push of a release's per-arch image, reporting the CRITICAL
    /// findings `critical`: the event it sends.
    async fn scanned(&self, key: &ReleaseKey, arch: Arch, critical: &[&str]) -> Value {
        let image_tag = key.tag.arch_tag(arch);
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(&image_tag)
            .build();
        let found = self
            .admin
            .ecr
            .batch_get_image()
            .repository_name(&key.repository)
            .image_ids(id.clone())
            .send()
            .await
            .expect("BatchGetImage as the administrator");
        let digest = found.images()[0]
            .image_id()
            .and_then(|id| id.image_digest())
            .expect("a digest")
            .to_owned();
        self.admin
            .ecr
            .start_image_scan()
            .repository_name(&key.repository)
            .image_id(id)
            .send()
            .await
            .expect("StartImageScan as the administrator");
        let findings: Vec<Value> = critical
            .iter()
            .map(|id| json!({"name": id, "severity": "CRITICAL", "attributes": []}))
            .collect();
        let counts = match critical.len() {
            0 => json!({}),
            n => json!({ "CRITICAL": n }),
        };
        let result = json!({"results": [{
            "registryId": ACCOUNT, "repositoryName": key.repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "scanned"},
            "imageScanFindings": {"findings": findings, "findingSeverityCounts": counts}
        }], "region": REGION});
        let answer = emulator::control_api_post(
            self.moto.endpoint(),
            "/moto-api/static/ecr/scan-finding-results",
            &result.to_string(),
        )
        .expect("the emulator takes the findings");
        assert!(answer < 300, "the emulator refused the findings: {answer}");
        let mut event = sample("ecr-scan-findings.json");
        event["region"] = json!(REGION);
        event["time"] = json!(time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time"));
        event["resources"] = json!([format!(
            "arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{}",
            key.repository
        )]);
        let detail = &mut event["detail"];
        detail["repository-name"] = json!(key.repository);
        detail["image-digest"] = json!(digest);
        detail["image-tags"] = json!([image_tag]);
        detail["finding-severity-counts"] = counts;
        event
    }

    /// An ECS service of `cluster` running `image`: a workload retention reads.
    async fn service_running(&self, cluster: &str, image: &str) {
        let ecs = self.admin.ecs();
        ecs.create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("CreateCluster as the administrator");
        let definition = ecs
            .register_task_definition()
            .family("web")
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("web")
                    .image(image)
                    .memory(128)
                    .build(),
            )
            .send()
            .await
            .expect("RegisterTaskDefinition as the administrator");
        let arn = definition
            .task_definition()
            .and_then(|d| d.task_definition_arn())
            .expect("a task definition");
        ecs.create_service()
            .cluster(cluster)
            .service_name("web")
            .task_definition(arn)
            .desired_count(1)
            .send()
            .await
            .expect("CreateService as the administrator");
    }

    /// An untagged image nobody references, pushed to `repository`.
    async fn orphan(&self, repository: &str) -> Digest {
        let body =
            json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::of(repository.as_bytes()).as_str(), "size": 7},
            "layers": []})
            .to_string();
        let digest = Digest::of(body.as_bytes());
        self.admin
            .ecr
            .put_image()
            .repository_name(repository)
            .image_manifest(body)
            .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
            .image_digest(digest.as_str())
            .send()
            .await
            .expect("PutImage as the administrator");
        digest
    }
}

/// `Service.Operation` as the call log names a call, as IAM's `service:Operation`.
fn iam_action(call: &str) -> String {
    let (service, operation) = call.split_once('.').unwrap_or(("?", call));
    let prefix = match service {
        "ECR" => "ecr",
        "DynamoDB" => "dynamodb",
        "CodeBuild" => "codebuild",
        "EventBridge" => "events",
        "KMS" => "kms",
        "ECS" => "ecs",
        "Lambda" => "lambda",
        other => panic!("no IAM prefix known for the service {other} ({call})"),
    };
    format!("{prefix}:{operation}")
}

/// What a handler answered, as Lambda would report it; a handler error fails the test.
macro_rules! answered {
    ($what:expr, $result:expr $(,)?) => {{
        let outcome = $result.unwrap_or_else(|e| panic!("{}: {e:?}", $what));
        serde_json::to_value(outcome).expect("the answer serialises")
    }};
}

/// A finding the deployment's gate accepts.
const ALLOWLISTED: &str = "CVE-2024-3094";

const STALE: ReconcilePolicy = ReconcilePolicy {
    stale_after_ms: 15 * 60_000,
    deadline_ms: 6 * 3_600_000,
};

fn minutes_from_now(minutes: i64) -> i64 {
    use archgate::ports::Clock;
    archgate::ports::SystemClock.now_millis() + minutes * 60_000
}

fn key(repository: &str, tag: &str) -> ReleaseKey {
    ReleaseKey::new(repository, ReleaseTag::parse(tag).expect("a valid tag"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_runs_its_paths_with_exactly_the_actions_of_its_role() {
    // Given an emulator that enforces IAM, and for each function a user whose policy allows
    // exactly the actions template.yaml grants its role (the namespaced deployment: the
    // namespace apps/ with its key, signed attestations, retention of myapp and apps/*)
    let users: Vec<(&str, BTreeSet<String>)> = FUNCTIONS
        .iter()
        .map(|f| (*f, deployed_actions(f, NAMESPACED)))
        .collect();
    let env = Enforcing::start(&users).await;
    let start_builds = env.pipeline_of("StartBuildsFunction", archgate_start_builds::PERFORMS);
    let build_completed =
        env.pipeline_of("BuildCompletedFunction", archgate_build_completed::PERFORMS);
    let scan_gate = env.pipeline_of("ScanGateFunction", archgate_scan_gate::PERFORMS);
    let reconciler = env.clients_of("ReconcilerFunction").pipeline(&env.config);

    // When a release of apps/web is uploaded (its repository's first) and start-builds
    // handles the upload
    let web = key("apps/web", "web-1.4.2");
    let event = env.upload("releases/apps/web/web-1.4.2.zip").await;
    let answer = answered!(
        "start-builds",
        archgate_start_builds::handler::handle(&start_builds, event).await,
    );
    // Then both builds are started in the repository it created
    assert_eq!(answer["status"], "applied", "{answer}");
    assert_eq!(env.record(&web).await.phase(), Phase::Building);

    // When both builds complete and build-completed handles their events
    for event in env.builds_finished(&web).await {
        let answer = answered!(
            "build-completed",
            archgate_build_completed::handler::handle(&build_completed, event).await,
        );
        assert_eq!(answer["status"], "applied", "{answer}");
    }
    // Then the candidate index is published
    assert_eq!(env.record(&web).await.phase(), Phase::CandidateReady);

    // When both images are scanned, amd64's with a CRITICAL finding the allowlist accepts,
    // and scan-gate judges each scan
    for (arch, critical) in [(Arch::Amd64, &[ALLOWLISTED][..]), (Arch::Arm64, &[])] {
        let event = env.scanned(&web, arch, critical).await;
        let answer = answered!(
            "scan-gate",
            archgate_scan_gate::handler::handle(&scan_gate, event).await,
        );
        assert_eq!(answer["status"], "applied", "{answer}");
    }
    // Then the gate read the findings, let the allowlisted one through and promoted the
    // release, its attestations signed with the KMS key
    assert_eq!(env.record(&web).await.phase(), Phase::Published);
    let scan_gate_called = env.actions_called("ScanGateFunction");
    for action in ["ecr:DescribeImageScanFindings", "kms:Sign"] {
        assert!(scan_gate_called.contains(action), "{scan_gate_called:?}");
    }

    // Given a release of the default repository whose build and scan events were all lost
    let myapp = key("myapp", "myapp-1.4.2");
    let event = env.upload("releases/myapp-1.4.2.zip").await;
    answered!(
        "start-builds",
        archgate_start_builds::handler::handle(&start_builds, event).await,
    );
    env.builds_finished(&myapp).await;

    // When the reconciler runs once the release has gone stale
    let report = answered!(
        "reconciler",
        archgate_reconciler::handler::handle(&reconciler, STALE, minutes_from_now(20)).await,
    );
    // Then the builds are read from CodeBuild and the candidate index is published
    assert_eq!(
        report["reconciled"][0]["phase-after"], "candidate_ready",
        "{report}"
    );
    assert!(
        report["failed"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );

    // When both images are scanned clean, their events lost, and the reconciler runs again
    for arch in Arch::ALL {
        env.scanned(&myapp, arch, &[]).await;
    }
    let report = answered!(
        "reconciler",
        archgate_reconciler::handler::handle(&reconciler, STALE, minutes_from_now(20)).await,
    );
    // Then it reads the verdicts and promotes the release, signing its attestations
    assert_eq!(
        report["reconciled"][0]["phase-after"], "published",
        "{report}"
    );
    assert_eq!(env.record(&myapp).await.phase(), Phase::Published);

    // Given an image nobody references in each of the two repositories
    let mut orphans = BTreeMap::new();
    for repository in ["myapp", "apps/web"] {
        orphans.insert(repository, env.orphan(repository).await);
    }

    // And a service of the cluster prod that runs the published apps/web
    let image = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/apps/web:web-1.4.2");
    env.service_running("prod", &image).await;

    // When retention runs on its schedule eight days later over myapp and apps/*
    let config = RetentionConfig::from_lookup(archgate::config::sample_lookup(&[
        (archgate::config::RETENTION_REPOSITORIES, "myapp,apps/*"),
        (archgate::config::LEDGER_TABLE, &env.config.ledger_table),
        (archgate::config::EVENT_BUS, &env.config.event_bus),
        (archgate::config::RETENTION_MAX_DELETE_SHARE, "0.9"),
    ]))
    .expect("retention's configuration");
    let retention = env.clients_of("RetentionCleanupFunction").retention_at(
        config,
        ShiftedClock {
            offset_ms: 8 * 24 * 3_600_000,
        },
    );
    let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = answered!(
        "retention-cleanup",
        archgate_retention_cleanup::handler::handle(&retention, scheduled).await,
    );
    // Then both repositories are cleaned without an error: each loses its orphan, and only it
    let deleted: BTreeMap<&str, Value> = report["repositories"]
        .as_array()
        .expect("a report per repository")
        .iter()
        .map(|r| {
            let repository = r["repository"].as_str().unwrap_or("?");
            assert!(r["error"].is_null(), "{repository}: {r}");
            (repository, r["deleted"].clone())
        })
        .collect();
    let expected: BTreeMap<&str, Value> = orphans
        .iter()
        .map(|(repository, orphan)| (*repository, json!([orphan.as_str()])))
        .collect();
    assert_eq!(deleted, expected, "{report}");

    // And every call each function made is one its paths list, and so was allowed; the
    // reconciler signed too
    let mut called_by = BTreeMap::new();
    for function in FUNCTIONS {
        let mut called = env.actions_called(function);
        if function == "ScanGateFunction" {
            called.extend(scan_gate_called.iter().cloned());
        }
        called_by.insert(function, called);
    }
    let unlisted: Vec<String> = called_by
        .iter()
        .flat_map(|(function, called)| {
            called
                .iter()
                .filter(|action| {
                    !PATHS.iter().any(|p| {
                        p.function == *function && p.calls.iter().any(|(a, _)| a == action)
                    })
                })
                .map(move |action| format!("{function}: {action}"))
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "calls no path lists: {unlisted:?}\nevery call: {called_by:#?}"
    );
    assert!(
        called_by["ReconcilerFunction"].contains("kms:Sign"),
        "{called_by:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_an_action_its_path_calls_is_denied_that_path() {
    // Given start-builds' user with every action of its role but ecr:CreateRepository, and
    // one with them all
    let granted = deployed_actions("StartBuildsFunction", NAMESPACED);
    let mut lacking = granted.clone();
    assert!(lacking.remove("ecr:CreateRepository"));
    let env = Enforcing::start(&[("lacking", lacking), ("StartBuildsFunction", granted)]).await;
    let event = env.upload("releases/apps/web/web-1.4.2.zip").await;

    // When the first handles the first upload of the namespace's repository apps/web
    let pipeline = env.pipeline_of("lacking", archgate_start_builds::PERFORMS);
    let denied = archgate_start_builds::handler::handle(&pipeline, event.clone()).await;

    // Then the handler fails with a typed error Lambda retries, naming the call, and no
    // build started
    let error = denied.expect_err("CreateRepository is denied");
    assert!(error.is_retryable(), "{}", error.chain());
    assert!(
        error.chain().contains("CreateRepository"),
        "{}",
        error.chain()
    );
    let called = env.actions_called("lacking");
    assert!(!called.contains("codebuild:StartBuild"), "{called:?}");
    // And what the emulator answered was IAM's denial of that action
    let ecr = env.users["lacking"].0.ecr.clone();
    let created = ecr
        .create_repository()
        .repository_name("apps/web")
        .send()
        .await;
    assert_denied(
        created.expect_err("denied").raw_response(),
        "ecr:CreateRepository",
    );

    // When the user with the whole role handles the same upload, then it is applied
    let pipeline = env.pipeline_of("StartBuildsFunction", archgate_start_builds::PERFORMS);
    let answer = answered!(
        "start-builds",
        archgate_start_builds::handler::handle(&pipeline, event).await,
    );
    assert_eq!(answer["status"], "applied", "{answer}");
}
