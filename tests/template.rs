//! template.yaml against the code it deploys: one function resource per crate, the variables
//! each function's configuration reads, least privilege in every IAM policy, and the
//! EventBridge rules evaluated by the emulator's rule matcher against the samples in `events/`.
//!
//! The template is parsed with serde_yaml, which keeps CloudFormation's short-form tags
//! (`!Ref`, `!Sub`, `!GetAtt`, `!If`, …) as tagged values. A small resolver evaluates them
//! with the parameter defaults, account `123456789012`, region `eu-west-1` (the samples'
//! account and region) and stack name `archgate`, so the tests see the values a deployment
//! with the defaults would get.

use archgate::config::{
    RetentionConfig, RETENTION_CONCURRENCY, RETENTION_MAX_DELETE_SHARE, RETENTION_REPOSITORIES,
    RETENTION_UNTAGGED_DAYS,
};
use archgate::config::{
    ACCOUNT_ID, EVENT_BUS, GATE_ALLOWLIST, GATE_MAX, GATE_ON_SCAN_FAILURE, LEDGER_TABLE,
    MOVING_TAGS, VARIABLES,
};
use archgate::config::{RECONCILE_DEADLINE_HOURS, RECONCILE_STALE_MINUTES};
use archgate::domain::ManifestMode;
use archgate::Config;
use archgate_integration_tests::installation;
use archgate_integration_tests::workspace::{manifest_names, template, workspace};
use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Map, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
const STACK: &str = "archgate";

fn resources(template: &Yaml) -> Vec<(&str, &Yaml)> {
    template["Resources"]
        .as_mapping()
        .expect("template.yaml has Resources")
        .iter()
        .map(|(name, resource)| (name.as_str().expect("logical ids are strings"), resource))
        .collect()
}

fn of_type<'t>(template: &'t Yaml, kind: &str) -> Vec<(&'t str, &'t Yaml)> {
    resources(template)
        .into_iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .collect()
}

fn functions(template: &Yaml) -> Vec<(&str, &Yaml)> {
    of_type(template, "AWS::Serverless::Function")
}

/// A function's `CodeUri` (or the one from Globals), without `./` and a trailing `/`.
fn code_uri(template: &Yaml, function: &Yaml) -> Option<String> {
    function["Properties"]["CodeUri"]
        .as_str()
        .or_else(|| template["Globals"]["Function"]["CodeUri"].as_str())
        .map(|uri| {
            uri.trim_start_matches("./")
                .trim_end_matches('/')
                .to_owned()
        })
}

/// The crate directory under `functions/` a function is built from: its CodeUri is the
/// package `./dev package` makes of the binary of the same name,
/// `dist/lambda/<binary>/bootstrap.zip` (tests/package.rs).
fn crate_dir(template: &Yaml, function: &Yaml) -> Option<String> {
    code_uri(template, function)?
        .strip_prefix("dist/lambda/")?
        .strip_suffix("/bootstrap.zip")
        .map(str::to_owned)
}

/// The short (`!Ref X`) or long (`Ref: X`, `Fn::Sub: …`) form of an intrinsic function, as
/// its long name and its argument.
fn intrinsic(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let long = match name {
                "Ref" | "Condition" => name.to_owned(),
                _ => format!("Fn::{name}"),
            };
            Some((long, &tagged.value))
        }
        Yaml::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key.starts_with("Fn::")).then(|| (key.to_owned(), argument))
        }
        _ => None,
    }
}

fn scalar(value: &Json) -> Result<String, String> {
    match value {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other} is not a scalar")),
    }
}

/// Evaluates the intrinsic functions of template.yaml for one set of parameter values.
struct Resolver<'t> {
    template: &'t Yaml,
    parameters: BTreeMap<String, String>,
}

impl<'t> Resolver<'t> {
    /// The parameter defaults, with `overrides` applied.
    fn new(template: &'t Yaml, overrides: &[(&str, &str)]) -> Self {
        let mut parameters = BTreeMap::new();
        for (name, parameter) in template["Parameters"].as_mapping().into_iter().flatten() {
            let name = name
                .as_str()
                .expect("parameter names are strings")
                .to_owned();
            let default = match &parameter["Default"] {
                Yaml::String(s) => s.clone(),
                Yaml::Number(n) => n.to_string(),
                Yaml::Bool(b) => b.to_string(),
                Yaml::Null => continue,
                other => panic!("parameter {name}: unexpected default {other:?}"),
            };
            parameters.insert(name, default);
        }
        for (name, value) in overrides {
            assert!(
                parameters.contains_key(*name) || template["Parameters"].get(*name).is_some(),
                "template.yaml has no parameter {name}"
            );
            parameters.insert((*name).to_owned(), (*value).to_owned());
        }
        Resolver {
            template,
            parameters,
        }
    }

    fn resource(&self, logical: &str) -> Result<&'t Yaml, String> {
        self.template["Resources"]
            .get(logical)
            .ok_or_else(|| format!("no resource, parameter or pseudo parameter {logical}"))
    }

    /// What `!Ref` of a resource returns: the name it is given in the template, or the name
    /// CloudFormation would generate.
    fn physical_name(&self, logical: &str) -> Result<String, String> {
        let resource = self.resource(logical)?;
        let property = match resource["Type"].as_str().unwrap_or_default() {
            "AWS::S3::Bucket" => "BucketName",
            "AWS::ECR::Repository" => "RepositoryName",
            "AWS::CodeBuild::Project" | "AWS::Events::EventBus" => "Name",
            "AWS::DynamoDB::Table" => "TableName",
            "AWS::Logs::LogGroup" => "LogGroupName",
            "AWS::SQS::Queue" => "QueueName",
            _ => "",
        };
        if let Some(named) = resource["Properties"].get(property) {
            if let Some(value) = self.eval(named)? {
                return scalar(&value);
            }
        }
        Ok(format!("{STACK}-{logical}-1A2B3C4D5E6F"))
    }

    fn reference(&self, name: &str) -> Result<Option<Json>, String> {
        let pseudo = match name {
            "AWS::AccountId" => ACCOUNT,
            "AWS::Region" => REGION,
            "AWS::Partition" => "aws",
            "AWS::StackName" => STACK,
            "AWS::URLSuffix" => "amazonaws.com",
            "AWS::NoValue" => return Ok(None),
            _ => "",
        };
        if !pseudo.is_empty() {
            return Ok(Some(json!(pseudo)));
        }
        if let Some(value) = self.parameters.get(name) {
            return Ok(Some(json!(value)));
        }
        self.physical_name(name).map(|n| Some(json!(n)))
    }

    fn get_att(&self, logical: &str, attribute: &str) -> Result<Json, String> {
        let kind = self.resource(logical)?["Type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = self.physical_name(logical)?;
        let arn = match (kind.as_str(), attribute) {
            ("AWS::ECR::Repository", "Arn") => {
                format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}")
            }
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{name}"),
            ("AWS::Events::EventBus", "Arn") => {
                format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}")
            }
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
            }
            ("AWS::CodeBuild::Project", "Arn") => {
                format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{name}")
            }
            // CloudFormation's Arn of a log group ends in `:*` (every stream of it)
            ("AWS::Logs::LogGroup", "Arn") => {
                format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*")
            }
            _ => return Err(format!("!GetAtt {logical}.{attribute} has no local value")),
        };
        Ok(json!(arn))
    }

    fn sub(&self, text: &str, variables: &Map<String, Json>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("!Sub {text:?}: unclosed ${{"))?;
            let name = after[..end].trim();
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = match (variables.get(name), name.split_once('.')) {
                    (Some(value), _) => value.clone(),
                    (None, Some((logical, attribute))) if !name.starts_with("AWS::") => {
                        self.get_att(logical, attribute)?
                    }
                    _ => self
                        .reference(name)?
                        .ok_or_else(|| format!("!Sub {text:?}: ${{{name}}} has no value"))?,
                };
                out.push_str(&scalar(&value)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn condition(&self, name: &str) -> Result<bool, String> {
        let condition = self.template["Conditions"]
            .get(name)
            .ok_or_else(|| format!("no condition {name}"))?;
        self.truth(condition)
    }

    fn truth(&self, value: &Yaml) -> Result<bool, String> {
        if let Some(name) = value.get("Condition").and_then(Yaml::as_str) {
            return self.condition(name);
        }
        let (function, argument) =
            intrinsic(value).ok_or_else(|| format!("{value:?} is not a condition"))?;
        match (function.as_str(), argument.as_sequence().map(Vec::as_slice)) {
            ("Condition", _) => self.condition(argument.as_str().unwrap_or_default()),
            ("Fn::Equals", Some([a, b])) => Ok(self.eval(a)? == self.eval(b)?),
            ("Fn::Not", Some([a])) => Ok(!self.truth(a)?),
            ("Fn::And", Some(all)) => all.iter().try_fold(true, |t, c| Ok(t && self.truth(c)?)),
            ("Fn::Or", Some(any)) => any.iter().try_fold(false, |t, c| Ok(t || self.truth(c)?)),
            _ => Err(format!("{function} is not a condition function")),
        }
    }

    /// The value of a template fragment; `None` for `!Ref AWS::NoValue`.
    fn eval(&self, value: &Yaml) -> Result<Option<Json>, String> {
        if let Some((function, argument)) = intrinsic(value) {
            let arguments = argument.as_sequence().map(Vec::as_slice);
            return match (function.as_str(), arguments) {
                ("Ref", _) => self.reference(argument.as_str().unwrap_or_default()),
                ("Fn::GetAtt", _) => {
                    let (logical, attribute) = match (argument.as_str(), arguments) {
                        (Some(dotted), _) => dotted
                            .split_once('.')
                            .ok_or_else(|| format!("!GetAtt {dotted}: no attribute"))?,
                        (None, Some([logical, attribute])) => (
                            logical.as_str().unwrap_or_default(),
                            attribute.as_str().unwrap_or_default(),
                        ),
                        _ => return Err(format!("!GetAtt {argument:?}")),
                    };
                    self.get_att(logical, attribute).map(Some)
                }
                ("Fn::Sub", None) => {
                    let text = argument.as_str().ok_or("!Sub needs a string")?;
                    self.sub(text, &Map::new()).map(|s| Some(json!(s)))
                }
                ("Fn::Sub", Some([text, variables])) => {
                    let variables = match self.eval(variables)? {
                        Some(Json::Object(map)) => map,
                        other => return Err(format!("!Sub variables {other:?}")),
                    };
                    let text = text.as_str().ok_or("!Sub needs a string")?;
                    self.sub(text, &variables).map(|s| Some(json!(s)))
                }
                ("Fn::If", Some([condition, then, otherwise])) => {
                    let name = condition.as_str().ok_or("!If needs a condition name")?;
                    if self.condition(name)? {
                        self.eval(then)
                    } else {
                        self.eval(otherwise)
                    }
                }
                ("Fn::Join", Some([separator, list])) => {
                    let separator = separator.as_str().ok_or("!Join needs a separator")?;
                    let items = match self.eval(list)? {
                        Some(Json::Array(items)) => items,
                        other => return Err(format!("!Join of {other:?}")),
                    };
                    let parts = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                    Ok(Some(json!(parts.join(separator))))
                }
                ("Fn::Split", Some([separator, text])) => {
                    let separator = separator.as_str().ok_or("!Split needs a separator")?;
                    let text = scalar(&self.eval(text)?.unwrap_or_default())?;
                    Ok(Some(json!(text.split(separator).collect::<Vec<_>>())))
                }
                ("Fn::Select", Some([index, list])) => {
                    let index: usize = scalar(&self.eval(index)?.unwrap_or_default())?
                        .parse()
                        .map_err(|e| format!("!Select index: {e}"))?;
                    match self.eval(list)? {
                        Some(Json::Array(items)) => items
                            .get(index)
                            .cloned()
                            .map(Some)
                            .ok_or_else(|| format!("!Select {index} out of range")),
                        other => Err(format!("!Select from {other:?}")),
                    }
                }
                _ => Err(format!("{function} is not evaluated here: {value:?}")),
            };
        }
        Ok(Some(match value {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => json!(b),
            Yaml::Number(_) => serde_json::to_value(value).map_err(|e| e.to_string())?,
            Yaml::String(s) => json!(s),
            Yaml::Sequence(items) => Json::Array(
                items
                    .iter()
                    .filter_map(|item| self.eval(item).transpose())
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Mapping(map) => {
                let mut object = Map::new();
                for (key, item) in map {
                    let key = key.as_str().ok_or("mapping keys must be strings")?;
                    if let Some(item) = self.eval(item)? {
                        object.insert(key.to_owned(), item);
                    }
                }
                Json::Object(object)
            }
            Yaml::Tagged(tagged) => return Err(format!("unknown tag {}", tagged.tag)),
        }))
    }
}

/// The crates under `functions/`, each with its binary targets (`[[bin]]`, or the package's
/// own binary when `src/main.rs` is its only one); `None` for a directory that is no crate.
fn function_crates() -> BTreeMap<String, Option<Vec<String>>> {
    let root = workspace().join("functions");
    let mut crates = BTreeMap::new();
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let path = entry.expect("directory entry").path();
        if !path.is_dir() {
            continue;
        }
        let dir = path.file_name().unwrap().to_string_lossy().into_owned();
        let binaries = std::fs::read_to_string(path.join("Cargo.toml"))
            .ok()
            .map(|manifest| binaries(&manifest, &path));
        crates.insert(dir, binaries);
    }
    crates
}

fn binaries(manifest: &str, dir: &Path) -> Vec<String> {
    let (package, mut bins) = manifest_names(manifest);
    if bins.is_empty() && dir.join("src/main.rs").exists() {
        bins.extend(package);
    }
    bins
}

/// Every `"ARCHGATE_…"` literal in the Rust files under `dir`.
fn variables_named_in(dir: &std::path::Path, into: &mut std::collections::BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            variables_named_in(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("\"ARCHGATE_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if piece[name.len()..].starts_with('"') {
                    into.insert(format!("ARCHGATE_{name}"));
                }
            }
        }
    }
}

#[test]
fn the_readme_configuration_table_names_every_variable_the_code_reads() {
    // Given every ARCHGATE_ variable named in the library, the functions and the CLI (the
    // variables builds receive are the buildspec's, not a function's configuration)
    let mut named = std::collections::BTreeSet::new();
    for dir in ["shared/src", "functions", "cli/src"] {
        variables_named_in(&workspace().join(dir), &mut named);
    }
    for build_variable in [
        archgate::build_variables::RELEASE_TAG,
        archgate::build_variables::RELEASE_ATTEMPT,
        archgate::build_variables::RELEASE_UPLOAD,
    ] {
        named.remove(build_variable);
    }
    // (The prefix alone is no variable: repository settings are named without it.)
    named.remove("ARCHGATE_");
    // And the README's configuration table
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let table: Vec<&str> = readme
        .split("## Configuration")
        .nth(1)
        .expect("README has a Configuration section")
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    // Then each is in a row of it (the gate's limits as ARCHGATE_GATE_MAX_<SEVERITY>)
    let missing: Vec<&String> = named
        .iter()
        .filter(|name| {
            let shown = if name.starts_with("ARCHGATE_GATE_MAX_") {
                "`ARCHGATE_GATE_MAX_<SEVERITY>`".to_owned()
            } else {
                format!("`{name}`")
            };
            !table.iter().any(|row| row.contains(&shown))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's configuration table: {missing:?}"
    );
    assert!(named.len() > 20, "the scan found the variables: {named:?}");
}

#[test]
fn the_package_budgets_start_the_functions_with_the_sample_configuration() {
    // Given the variables tools/lambda-budgets.sh starts every function with
    let path = workspace().join("tools/lambda-budgets.sh");
    let script =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let given: Vec<(String, String)> = script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("--env "))
        .map(|pair| pair.trim_end_matches('\\').trim())
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("--env NAME=VALUE");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    // Then they are the one sample configuration, every variable of it
    let sample: Vec<(String, String)> = archgate::config::SAMPLE
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    assert_eq!(given, sample, "tools/lambda-budgets.sh's --env lines");
}

#[test]
fn each_build_project_runs_its_buildspec_file_unchanged() {
    // Given the CodeBuild projects of the template and the buildspecs/ files they embed
    let template = template();
    let projects = of_type(&template, "AWS::CodeBuild::Project");
    let expected = [
        ("Amd64BuildProject", "arch.yml"),
        ("Arm64BuildProject", "arch.yml"),
        ("ManifestProject", "manifest.yml"),
    ];
    assert_eq!(
        projects.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        expected.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "every CodeBuild project is checked against its buildspec file"
    );
    for (project, file) in expected {
        // When the inline BuildSpec is compared with the file
        let path = workspace().join("buildspecs").join(file);
        let source =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let resource = projects
            .iter()
            .find(|(name, _)| *name == project)
            .map(|(_, r)| r)
            .unwrap();
        let inline = resource["Properties"]["Source"]["BuildSpec"]
            .as_str()
            .unwrap_or_else(|| panic!("{project} has an inline BuildSpec"));
        // Then they are the same text, line for line
        let first_difference = source
            .lines()
            .zip(inline.lines())
            .position(|(a, b)| a != b)
            .or((source.lines().count() != inline.lines().count())
                .then(|| source.lines().count().min(inline.lines().count())));
        assert!(
            first_difference.is_none(),
            "{project}'s BuildSpec in template.yaml differs from buildspecs/{file} at line {}: \
             buildspecs/ is the source; paste it into the template unchanged",
            first_difference.unwrap_or(0) + 1
        );
    }
}

#[test]
fn every_function_crate_is_deployed_by_exactly_one_function_that_builds_its_binary() {
    // Given the crates under functions/ and the function resources of the template
    let template = template();
    let crates = function_crates();
    let functions = functions(&template);
    let workspace_manifest =
        std::fs::read_to_string(workspace().join("Cargo.toml")).expect("workspace Cargo.toml");
    let mut problems = Vec::new();

    // When each crate is looked up by the CodeUri of its package
    for (dir, binaries) in &crates {
        let Some(binaries) = binaries else {
            problems.push(format!("functions/{dir} has no Cargo.toml"));
            continue;
        };
        if !workspace_manifest.contains(&format!("\"functions/{dir}\"")) {
            problems.push(format!("functions/{dir} is not a workspace member"));
        }
        let deploying: Vec<&str> = functions
            .iter()
            .filter(|(_, f)| crate_dir(&template, f).as_deref() == Some(dir.as_str()))
            .map(|(logical, _)| *logical)
            .collect();
        let [logical] = deploying.as_slice() else {
            problems.push(format!(
                "functions/{dir}'s package dist/lambda/{dir}/bootstrap.zip should be the CodeUri \
                 of exactly one AWS::Serverless::Function, it is of {deploying:?}"
            ));
            continue;
        };
        if !binaries.iter().any(|b| b == dir) {
            problems.push(format!(
                "{logical}: its package is of the binary {dir:?}, which functions/{dir} does \
                 not have (it has {binaries:?})"
            ));
        }
    }
    // And each function resource is looked up among the crates
    for (logical, function) in &functions {
        match crate_dir(&template, function) {
            Some(dir) if matches!(crates.get(&dir), Some(Some(_))) => {}
            _ => problems.push(format!(
                "{logical}: CodeUri {:?} is not dist/lambda/<binary>/bootstrap.zip of a crate \
                 directory functions/<binary>",
                code_uri(&template, function)
            )),
        }
    }

    // Then every crate has its function and every function its crate
    assert!(!crates.is_empty(), "no crates under functions/");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The variables a function's configuration reads, by crate directory.
fn read_by(dir: &str) -> Option<Vec<&'static str>> {
    match dir {
        "start-builds" | "build-completed" | "scan-gate" => Some(
            VARIABLES
                .into_iter()
                .chain(GATE_MAX)
                .chain([
                    archgate::config::REPOSITORY_PREFIX,
                    archgate::config::REPOSITORY_KMS_KEY,
                    GATE_ALLOWLIST,
                    GATE_ON_SCAN_FAILURE,
                    MOVING_TAGS,
                    ACCOUNT_ID,
                    archgate::config::REGION,
                    archgate::config::SIGNING_KEY,
                ])
                .collect(),
        ),
        "reconciler" => Some(
            VARIABLES
                .into_iter()
                .chain(GATE_MAX)
                .chain([
                    archgate::config::REPOSITORY_PREFIX,
                    archgate::config::REPOSITORY_KMS_KEY,
                    GATE_ALLOWLIST,
                    GATE_ON_SCAN_FAILURE,
                    MOVING_TAGS,
                    ACCOUNT_ID,
                    archgate::config::REGION,
                    archgate::config::SIGNING_KEY,
                ])
                .chain([RECONCILE_STALE_MINUTES, RECONCILE_DEADLINE_HOURS])
                .collect(),
        ),
        "retention-cleanup" => Some(
            [
                RETENTION_REPOSITORIES,
                RETENTION_UNTAGGED_DAYS,
                RETENTION_MAX_DELETE_SHARE,
                LEDGER_TABLE,
                EVENT_BUS,
            ]
            .into_iter()
            .chain(RELEASE_EXPIRY.map(|(_, variable)| variable))
            .collect(),
        ),
        _ => None,
    }
}

/// Release-level expiry's parameters and the variables of retention's configuration they set.
const RELEASE_EXPIRY: [(&str, &str); 4] = [
    (
        "RetentionKeepReleases",
        archgate::config::RETENTION_KEEP_RELEASES,
    ),
    ("RetentionKeepDays", archgate::config::RETENTION_KEEP_DAYS),
    ("RetentionProtect", archgate::config::RETENTION_PROTECT),
    (
        "RetentionAttemptDays",
        archgate::config::RETENTION_ATTEMPT_DAYS,
    ),
];

#[test]
fn each_release_expiry_parameter_reaches_retention_constrained_and_off_by_default() {
    // Given the template's parameters and the retention function's environment
    let template = template();
    let function = &template["Resources"]["RetentionCleanupFunction"];
    let environment = environment(&template, function);
    let mut problems = Vec::new();

    for (parameter, variable) in RELEASE_EXPIRY {
        // When a release-level parameter is read
        let declared = &template["Parameters"][parameter];
        if declared.is_null() {
            problems.push(format!("parameter {parameter} is not declared"));
            continue;
        }
        // Then a pattern constrains it before anything is deployed
        if declared["AllowedPattern"]
            .as_str()
            .is_none_or(|p| p.trim().is_empty())
        {
            problems.push(format!("{parameter} has no AllowedPattern"));
        }
        // And it defaults to empty: release-level expiry is opt-in
        if declared["Default"].as_str() != Some("") {
            problems.push(format!(
                "{parameter} defaults to {:?}, not empty",
                declared["Default"]
            ));
        }
        // And it is the retention function's variable, unchanged
        let reference = environment.get(variable).and_then(|v| intrinsic(v));
        match reference {
            Some((function, name)) if function == "Ref" && name.as_str() == Some(parameter) => {}
            _ => problems.push(format!(
                "RetentionCleanupFunction: {variable} is not !Ref {parameter}"
            )),
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every `ARCHGATE_*` variable some configuration reads (`Config` or `RetentionConfig`).
fn read_by_any() -> BTreeSet<&'static str> {
    ["start-builds", "reconciler", "retention-cleanup"]
        .into_iter()
        .flat_map(|dir| read_by(dir).unwrap())
        .chain([RETENTION_CONCURRENCY])
        .collect()
}

/// A function's environment: Globals.Function.Environment.Variables with its own
/// Properties.Environment.Variables over them.
fn environment<'t>(template: &'t Yaml, function: &'t Yaml) -> BTreeMap<String, &'t Yaml> {
    let global = &template["Globals"]["Function"]["Environment"]["Variables"];
    let own = &function["Properties"]["Environment"]["Variables"];
    [global, own]
        .into_iter()
        .filter_map(Yaml::as_mapping)
        .flatten()
        .map(|(name, value)| (name.as_str().unwrap_or_default().to_owned(), value))
        .collect()
}

#[test]
fn every_function_is_given_each_variable_its_configuration_reads_and_no_unknown_one() {
    // Given the template's functions and the variables the configurations read
    let template = template();
    let known = read_by_any();
    let mut problems = Vec::new();

    for (logical, function) in functions(&template) {
        // When a function's environment is merged from Globals and its own
        let environment = environment(&template, function);
        let dir = crate_dir(&template, function).unwrap_or_default();
        let Some(required) = read_by(&dir) else {
            problems.push(format!(
                "{logical} (functions/{dir}): no list of the variables it reads; add it to \
                 read_by in tests/template.rs"
            ));
            continue;
        };

        // Then it sets every variable its configuration reads
        for variable in required {
            if !environment.contains_key(variable) {
                problems.push(format!("{logical}: {variable} is not set"));
            }
        }
        // And no ARCHGATE_* variable that nothing reads (a misspelt name is silently ignored)
        for variable in environment.keys() {
            if variable.starts_with("ARCHGATE_") && !known.contains(variable.as_str()) {
                problems.push(format!(
                    "{logical}: {variable} is set, but no configuration reads it"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A function's environment with the intrinsic functions evaluated.
fn resolved_environment(
    resolver: &Resolver,
    template: &Yaml,
    function: &Yaml,
) -> Result<HashMap<String, String>, String> {
    let mut resolved = HashMap::new();
    for (name, value) in environment(template, function) {
        if let Some(value) = resolver.eval(value).map_err(|e| format!("{name}: {e}"))? {
            resolved.insert(
                name.clone(),
                scalar(&value).map_err(|e| format!("{name}: {e}"))?,
            );
        }
    }
    Ok(resolved)
}

/// A set of parameter values and what the functions' configurations should make of it.
struct Deployment {
    name: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    mode: ManifestMode,
    prefix: &'static str,
    moving_tags: &'static [&'static str],
    retained: &'static [&'static str],
    /// The repository namespace the pipeline functions read.
    namespace: Option<&'static str>,
}

#[test]
fn with_the_defaults_and_with_other_parameters_each_function_accepts_its_environment() {
    // Given the parameter defaults, and a deployment that changes the modes and lists
    let template = template();
    let deployments = [
        Deployment {
            name: "the defaults",
            parameters: &[],
            mode: ManifestMode::Native,
            prefix: "releases/",
            moving_tags: &["latest"],
            retained: &["myapp"],
            namespace: None,
        },
        Deployment {
            name: "codebuild mode, a retention list, no prefix, no moving tags",
            parameters: &[
                ("ManifestMode", "codebuild"),
                ("RetentionRepositories", "team/*,myapp"),
                ("SourcePrefix", ""),
                ("MovingTags", ""),
            ],
            mode: ManifestMode::Codebuild,
            prefix: "",
            moving_tags: &[],
            retained: &["team/*", "myapp"],
            namespace: None,
        },
        Deployment {
            name: "a repository namespace",
            parameters: &[
                ("RepositoryPrefix", "apps/"),
                (
                    "RepositoryKmsKeyArn",
                    "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                ),
            ],
            mode: ManifestMode::Native,
            prefix: "releases/",
            moving_tags: &["latest"],
            retained: &["myapp"],
            namespace: Some("apps/"),
        },
    ];
    let mut problems = Vec::new();

    for deployment in &deployments {
        let resolver = Resolver::new(&template, deployment.parameters);
        for (logical, function) in functions(&template) {
            let at = format!("{}: {logical}", deployment.name);
            // When the function's environment is resolved as CloudFormation would
            let vars = match resolved_environment(&resolver, &template, function) {
                Ok(vars) => vars,
                Err(e) => {
                    problems.push(format!("{at}: {e}"));
                    continue;
                }
            };

            // Then its configuration starts from it, with the values the parameters name
            match crate_dir(&template, function).as_deref() {
                Some("retention-cleanup") => {
                    match RetentionConfig::from_lookup(|name| vars.get(name).cloned()) {
                        Ok(config) if config.repositories == deployment.retained => {}
                        Ok(config) => problems.push(format!(
                            "{at} cleans {:?}, expected {:?}",
                            config.repositories, deployment.retained
                        )),
                        Err(e) => problems.push(format!("{at}: {e}")),
                    }
                }
                _ => match Config::from_map(&vars) {
                    Ok(config) => {
                        let expected = (
                            deployment.mode,
                            "archgate-source-123456789012",
                            deployment.prefix,
                            "myapp",
                            "archgate",
                            deployment.moving_tags.to_vec(),
                            deployment.namespace,
                        );
                        let actual = (
                            config.manifest_mode,
                            config.source_bucket.as_str(),
                            config.source_prefix.as_str(),
                            config.repository.as_str(),
                            config.event_bus.as_str(),
                            config.moving_tags.iter().map(String::as_str).collect(),
                            config.repository_prefix.as_deref(),
                        );
                        if actual != expected {
                            problems.push(format!("{at}: {actual:?}, expected {expected:?}"));
                        }
                    }
                    Err(e) => problems.push(format!("{at}: {e}")),
                },
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// One IAM policy document found in the template, and where.
struct PolicyDocument<'t> {
    owner: String,
    document: &'t Yaml,
}

/// Every identity policy in the template: inline `Policies` of roles, users, groups and
/// functions, and the documents of `AWS::IAM::Policy`, `ManagedPolicy` and `RolePolicy`.
/// Policies whose statements are not in the template (managed policy ARNs, SAM policy
/// templates) are reported in `unreadable`: least privilege cannot be checked for them here.
fn identity_policies(template: &Yaml) -> (Vec<PolicyDocument<'_>>, Vec<String>) {
    let mut documents = Vec::new();
    let mut unreadable = Vec::new();
    for (logical, resource) in resources(template) {
        let properties = &resource["Properties"];
        match resource["Type"].as_str().unwrap_or_default() {
            "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                for policy in properties["Policies"].as_sequence().into_iter().flatten() {
                    let name = policy["PolicyName"].as_str().unwrap_or("<unnamed>");
                    documents.push(PolicyDocument {
                        owner: format!("{logical} (policy {name})"),
                        document: &policy["PolicyDocument"],
                    });
                }
                if let Some(arns) = properties.get("ManagedPolicyArns") {
                    unreadable.push(format!("{logical}: ManagedPolicyArns {arns:?}"));
                }
            }
            "AWS::IAM::Policy"
            | "AWS::IAM::ManagedPolicy"
            | "AWS::IAM::RolePolicy"
            | "AWS::IAM::UserPolicy"
            | "AWS::IAM::GroupPolicy" => documents.push(PolicyDocument {
                owner: logical.to_owned(),
                document: &properties["PolicyDocument"],
            }),
            "AWS::Serverless::Function" => {
                let policies = match &properties["Policies"] {
                    Yaml::Sequence(list) => list.iter().collect(),
                    Yaml::Null => Vec::new(),
                    single => vec![single],
                };
                for (n, policy) in policies.into_iter().enumerate() {
                    if policy.get("Statement").is_some() {
                        documents.push(PolicyDocument {
                            owner: format!("{logical} (Policies[{n}])"),
                            document: policy,
                        });
                    } else {
                        unreadable.push(format!("{logical}: Policies[{n}] {policy:?}"));
                    }
                }
            }
            _ => {}
        }
    }
    (documents, unreadable)
}

/// The alternatives of a value that may be chosen by `!If`: both branches, never `NoValue`.
fn alternatives(value: &Yaml) -> Vec<&Yaml> {
    match intrinsic(value) {
        Some((function, argument)) if function == "Fn::If" => argument
            .as_sequence()
            .map(|args| args.iter().skip(1).flat_map(alternatives).collect())
            .unwrap_or_default(),
        Some((function, argument))
            if function == "Ref" && argument.as_str() == Some("AWS::NoValue") =>
        {
            Vec::new()
        }
        _ => vec![value],
    }
}

/// The entries of a field that takes one value or a list of them, through `!If` branches.
fn entries(value: &Yaml) -> Vec<&Yaml> {
    alternatives(value)
        .into_iter()
        .flat_map(|v| match v {
            Yaml::Sequence(items) => items.iter().flat_map(alternatives).collect(),
            single => vec![single],
        })
        .collect()
}

/// Actions IAM authorises against no resource type: Resource "*" is the only one that allows
/// them.
const UNSCOPED_ACTIONS: [&str; 5] = [
    "ecr:GetAuthorizationToken",
    "ecs:ListClusters",
    "ecs:ListTaskDefinitions",
    "ecs:DescribeTaskDefinition",
    "lambda:ListFunctions",
];

/// Actions scoped by the cluster they list (condition key `ecs:cluster`), not by a resource.
const CLUSTER_SCOPED_ACTIONS: [&str; 2] = ["ecs:ListServices", "ecs:ListTasks"];

/// Whether a statement's Condition holds `key` under some operator.
fn conditions_on(statement: &Yaml, key: &str) -> bool {
    statement["Condition"]
        .as_mapping()
        .into_iter()
        .flat_map(|operators| operators.values())
        .any(|keys| keys.get(key).is_some())
}

/// Whether a Resource entry is `*` (also through `!Sub "*"`).
fn is_any_resource(entry: &Yaml) -> bool {
    match intrinsic(entry) {
        Some((function, argument)) if function == "Fn::Sub" => argument.as_str() == Some("*"),
        Some(_) => false,
        None => entry.as_str() == Some("*"),
    }
}

#[test]
fn every_iam_policy_grants_named_actions_on_named_resources() {
    // Given every identity policy statement in the template
    let template = template();
    let (documents, unreadable) = identity_policies(&template);
    assert!(
        !documents.is_empty(),
        "no IAM policies found in template.yaml"
    );
    let mut problems: Vec<String> = unreadable
        .into_iter()
        .map(|p| format!("{p}: its statements are not in the template, so nothing checks them"))
        .collect();
    let mut checked = 0;

    for PolicyDocument { owner, document } in &documents {
        for (n, statement) in entries(&document["Statement"]).into_iter().enumerate() {
            checked += 1;
            let sid = statement["Sid"].as_str().map_or_else(
                || format!("statement #{n} (no Sid)"),
                |s| format!("Sid {s}"),
            );
            let at = format!("{owner}, {sid}");
            // A Deny narrows; only what a statement allows has to be least privilege.
            if statement["Effect"].as_str() != Some("Allow") {
                continue;
            }
            // When its actions and resources are read
            if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
                problems.push(format!(
                    "{at}: Allow with NotAction/NotResource grants everything not listed"
                ));
            }
            let actions: BTreeSet<String> = entries(&statement["Action"])
                .into_iter()
                .map(|a| a.as_str().map_or_else(|| format!("{a:?}"), str::to_owned))
                .collect();
            if actions.is_empty() {
                problems.push(format!("{at}: no Action"));
            }

            // Then no action is a wildcard ("*", "ecr:*", "ecr:Describe*")
            for action in &actions {
                if action.contains('*') {
                    problems.push(format!("{at}: wildcard action {action:?}"));
                }
            }
            // And no resource is "*", except in a statement of actions that take no resource
            // at all, or of actions scoped by the cluster they name instead
            let any_resource = entries(&statement["Resource"])
                .into_iter()
                .any(is_any_resource);
            let unscoped = actions
                .iter()
                .all(|a| UNSCOPED_ACTIONS.contains(&a.as_str()));
            let cluster_scoped = actions
                .iter()
                .all(|a| CLUSTER_SCOPED_ACTIONS.contains(&a.as_str()))
                && conditions_on(statement, "ecs:cluster");
            if any_resource && !unscoped && !cluster_scoped {
                problems.push(format!(
                    "{at}: Resource \"*\" for {actions:?} (only {UNSCOPED_ACTIONS:?} on their \
                     own, or {CLUSTER_SCOPED_ACTIONS:?} under an ecs:cluster condition, may use \
                     it)"
                ));
            }
        }
    }
    assert!(checked > 0, "no IAM policy statements found");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The IAM actions the code of each function calls: what every pipeline function needs, what
/// each service its pipeline performs effects on needs (its `PERFORMS`), and what its
/// handler reads besides.
fn actions_needed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    use archgate::domain::release::Service;
    let performing = |services: &[Service], extra: &[&'static str]| {
        let mut actions: BTreeSet<&'static str> = ["dynamodb:GetItem", "dynamodb:PutItem"]
            .into_iter()
            .collect();
        for service in services {
            actions.extend(match service {
                // a namespace's repository is made sure of before its first build
                Service::CodeBuild => &[
                    "codebuild:StartBuild",
                    "codebuild:StopBuild",
                    "ecr:CreateRepository",
                    // what ECR needs of whoever creates a repository encrypted with a KMS key
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                    "kms:RetireGrant",
                ][..],
                Service::Registry => &[
                    "ecr:BatchGetImage",
                    "ecr:PutImage",
                    // the attestations' blobs, before their referrer manifests
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart",
                    "ecr:CompleteLayerUpload",
                    // digest pointers and the moving tags' locks
                    "dynamodb:UpdateItem",
                ][..],
                Service::Events => &["events:PutEvents"][..],
                // on the signing key alone, and only when one is configured: the key is
                // described before signing (only an enabled P-256 signing key signs)
                Service::Signing => &["kms:DescribeKey", "kms:Sign"][..],
            });
        }
        actions.extend(extra);
        actions
    };
    BTreeMap::from([
        (
            "StartBuildsFunction",
            performing(archgate_start_builds::PERFORMS, &[]),
        ),
        (
            "BuildCompletedFunction",
            // a build whose event lacks what names its release is looked up
            performing(
                archgate_build_completed::PERFORMS,
                &["codebuild:BatchGetBuilds"],
            ),
        ),
        (
            "ScanGateFunction",
            performing(
                archgate_scan_gate::PERFORMS,
                &["ecr:DescribeImageScanFindings"],
            ),
        ),
        (
            "RetentionCleanupFunction",
            BTreeSet::from([
                // the inventory, its deletions, and the repositories prefix/* patterns name
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:BatchDeleteImage",
                "ecr:DescribeRepositories",
                // releases in flight keep their images; an expired release is marked (read
                // again when another writer got there first)
                "dynamodb:Scan",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "events:PutEvents",
                // the images workloads name (AwsWorkloads)
                "ecs:ListTaskDefinitions",
                "ecs:DescribeTaskDefinition",
                "ecs:ListClusters",
                "ecs:ListServices",
                "ecs:DescribeServices",
                "ecs:ListTasks",
                "ecs:DescribeTasks",
                "lambda:ListFunctions",
                "lambda:GetFunction",
            ]),
        ),
        (
            "ReconcilerFunction",
            performing(
                archgate::pipeline::EVERY_SERVICE,
                &[
                    "dynamodb:Scan",
                    "codebuild:BatchGetBuilds",
                    "ecr:DescribeImageScanFindings",
                ],
            ),
        ),
    ])
}

#[test]
fn each_function_is_granted_exactly_what_its_effects_and_reads_need() {
    // Given the actions each function's code calls, and what its policies grant
    let template = template();
    let (documents, _) = identity_policies(&template);
    let mut problems = Vec::new();
    for (function, needed) in actions_needed() {
        let mut granted: BTreeSet<String> = BTreeSet::new();
        for document in documents.iter().filter(|d| d.owner.starts_with(function)) {
            for statement in entries(&document.document["Statement"]) {
                for action in entries(&statement["Action"]) {
                    granted.extend(action.as_str().map(str::to_owned));
                }
            }
        }
        // Then every call it may make is allowed (no AccessDenied for work it takes over)
        for action in &needed {
            if !granted.contains(*action) {
                problems.push(format!(
                    "{function} needs {action}, which its role does not grant"
                ));
            }
        }
        // And nothing else is (least privilege)
        for action in &granted {
            if !needed.contains(action.as_str()) {
                problems.push(format!(
                    "{function} is granted {action}, which its code never calls"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// One statement of a function's role as CloudFormation deploys it: every intrinsic function
/// evaluated with the deployment's parameters, so a statement under a false `!If` is gone.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub sid: String,
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// `{operator: {key: value or [values]}}`, or null.
    pub condition: Json,
}

/// The statements of `function`'s `Policies`, deployed with the parameter defaults and
/// `parameters` over them.
pub(crate) fn deployed_statements(function: &str, parameters: &[(&str, &str)]) -> Vec<Statement> {
    let template = template();
    let resolver = Resolver::new(&template, parameters);
    let (documents, _) = identity_policies(&template);
    let owned = format!("{function} (");
    let strings = |value: &Json| -> Vec<String> {
        match value {
            Json::Array(items) => items.iter().filter_map(|v| scalar(v).ok()).collect(),
            Json::Null => Vec::new(),
            single => scalar(single).into_iter().collect(),
        }
    };
    let mut statements = Vec::new();
    for document in documents.iter().filter(|d| d.owner.starts_with(&owned)) {
        let resolved = resolver
            .eval(document.document)
            .unwrap_or_else(|e| panic!("{}: {e}", document.owner))
            .unwrap_or_default();
        let listed = match &resolved["Statement"] {
            Json::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        for statement in listed {
            assert!(
                statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
                "{}: NotAction/NotResource are not evaluated here",
                document.owner
            );
            statements.push(Statement {
                sid: statement["Sid"].as_str().unwrap_or("<no Sid>").to_owned(),
                allow: statement["Effect"] == "Allow",
                actions: strings(&statement["Action"]),
                resources: strings(&statement["Resource"]),
                condition: statement.get("Condition").cloned().unwrap_or(Json::Null),
            });
        }
    }
    assert!(
        !statements.is_empty(),
        "template.yaml has no policies of {function}"
    );
    statements
}

/// Every action `function`'s role allows when deployed with `parameters`.
pub(crate) fn deployed_actions(function: &str, parameters: &[(&str, &str)]) -> BTreeSet<String> {
    deployed_statements(function, parameters)
        .into_iter()
        .filter(|s| s.allow)
        .flat_map(|s| s.actions)
        .collect()
}

/// `function`'s environment as CloudFormation deploys it with `parameters`.
pub(crate) fn deployed_environment(
    function: &str,
    parameters: &[(&str, &str)],
) -> HashMap<String, String> {
    let template = template();
    let resolver = Resolver::new(&template, parameters);
    let resource = &template["Resources"][function];
    assert!(!resource.is_null(), "template.yaml has no {function}");
    resolved_environment(&resolver, &template, resource)
        .unwrap_or_else(|e| panic!("{function}: {e}"))
}

/// IAM's wildcards: `*` any run of characters, `?` any one (case-sensitive unless told).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// A Resource entry (or an ArnLike value) against an ARN: `*` alone matches anything;
/// otherwise each of the six colon-separated parts is matched on its own, as IAM does.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts = |s: &str| s.splitn(6, ':').map(str::to_owned).collect::<Vec<_>>();
    let (pattern, arn) = (parts(pattern), parts(arn));
    pattern.len() == 6
        && arn.len() == 6
        && pattern.iter().zip(&arn).all(|(p, a)| wildcard_match(p, a))
}

/// Whether a statement's Condition holds for a request whose context has `context`'s keys.
/// A key the request does not carry fails its condition (no `...IfExists` here); an operator
/// the evaluator does not know fails the test rather than pass silently.
fn condition_holds(condition: &Json, context: &[(&str, &str)]) -> bool {
    let Some(operators) = condition.as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object()
            .unwrap_or_else(|| panic!("Condition {operator}: {keys} is not a map"))
            .iter()
            .all(|(key, wanted)| {
                let Some((_, actual)) = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))
                else {
                    return false;
                };
                let wanted: Vec<String> = match wanted {
                    Json::Array(values) => values.iter().filter_map(|v| scalar(v).ok()).collect(),
                    value => scalar(value).into_iter().collect(),
                };
                wanted.iter().any(|w| match operator.as_str() {
                    "ArnLike" | "ArnEquals" => arn_matches(w, actual),
                    "StringEquals" => w == actual,
                    "StringLike" => wildcard_match(w, actual),
                    "Bool" => w.eq_ignore_ascii_case(actual),
                    other => panic!("the policy evaluator does not know the operator {other}"),
                })
            })
    })
}

/// IAM's decision on one request (`action` on the ARN `resource`, with the condition keys
/// of `context`) against a role's statements: an explicit Deny wins, then any Allow whose
/// action, resource and conditions all match; nothing matching is an implicit deny.
pub(crate) fn allows(
    statements: &[Statement],
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> bool {
    allowed_by(statements, action, resource, context).is_some()
}

/// The Sid of the statement that allows the request, if it is allowed ([`allows`]).
pub(crate) fn allowed_by(
    statements: &[Statement],
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> Option<String> {
    let matches = |s: &&Statement| {
        s.actions
            .iter()
            .any(|a| wildcard_match(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && s.resources.iter().any(|r| arn_matches(r, resource))
            && condition_holds(&s.condition, context)
    };
    let (allowing, denying): (Vec<&Statement>, Vec<&Statement>) =
        statements.iter().filter(matches).partition(|s| s.allow);
    if denying.is_empty() {
        allowing.first().map(|s| s.sid.clone())
    } else {
        None
    }
}

#[test]
fn the_policy_evaluator_matches_as_iam_does() {
    // Given a statement on one repository and a namespace, and a listing under a condition
    let statements = [
        Statement {
            sid: "Repositories".to_owned(),
            allow: true,
            actions: vec!["ecr:PutImage".to_owned()],
            resources: vec![
                format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/myapp"),
                format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/apps/*"),
            ],
            condition: Json::Null,
        },
        Statement {
            sid: "Listing".to_owned(),
            allow: true,
            actions: vec!["ecs:ListServices".to_owned()],
            resources: vec!["*".to_owned()],
            condition: json!({"ArnLike": {"ecs:cluster": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/*")}}),
        },
    ];
    let repository = |name: &str| format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}");
    // Then actions match whatever their case, resources exactly or through `*`
    assert!(allows(
        &statements,
        "ecr:PutImage",
        &repository("myapp"),
        &[]
    ));
    assert!(allows(
        &statements,
        "ECR:putimage",
        &repository("apps/web"),
        &[]
    ));
    assert!(allows(
        &statements,
        "ecr:PutImage",
        &repository("apps/team/web"),
        &[]
    ));
    // And a name that only starts like one, another action or another region is denied
    for outside in ["myapp2", "appsweb", "apps", "teams/web"] {
        assert!(
            !allows(&statements, "ecr:PutImage", &repository(outside), &[]),
            "{outside}"
        );
    }
    assert!(!allows(
        &statements,
        "ecr:BatchDeleteImage",
        &repository("myapp"),
        &[]
    ));
    let elsewhere = format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/myapp");
    assert!(!allows(&statements, "ecr:PutImage", &elsewhere, &[]));
    // And a condition holds only for a request that carries its key with a matching value
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod");
    let foreign = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/prod");
    assert!(allows(
        &statements,
        "ecs:ListServices",
        "*",
        &[("ecs:cluster", &cluster)]
    ));
    assert!(!allows(
        &statements,
        "ecs:ListServices",
        "*",
        &[("ecs:cluster", &foreign)]
    ));
    assert!(!allows(&statements, "ecs:ListServices", "*", &[]));
    // And an explicit Deny wins over an Allow
    let mut denied = statements.to_vec();
    denied.push(Statement {
        sid: "NotThatOne".to_owned(),
        allow: false,
        actions: vec!["ecr:*".to_owned()],
        resources: vec![repository("apps/secret")],
        condition: Json::Null,
    });
    assert!(!allows(
        &denied,
        "ecr:PutImage",
        &repository("apps/secret"),
        &[]
    ));
    assert!(allows(
        &denied,
        "ecr:PutImage",
        &repository("apps/web"),
        &[]
    ));
}

/// An EventBridge rule of the template, with its pattern resolved.
#[derive(Debug)]
struct Rule {
    /// The rule's logical id (SAM names a function's rule `<function><event>`).
    name: String,
    bus: String,
    pattern: Json,
}

/// The template's event-pattern rules: functions' `EventBridgeRule` (and `CloudWatchEvent`)
/// events and `AWS::Events::Rule` resources. Schedule rules have no pattern and are left out.
fn rules(template: &Yaml, resolver: &Resolver) -> Vec<Rule> {
    let resolve = |name: &str, value: &Yaml| {
        resolver
            .eval(value)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_default()
    };
    let bus = |name: &str, value: Option<&Yaml>| {
        value.map_or_else(
            || "default".to_owned(),
            |v| scalar(&resolve(name, v)).unwrap_or_else(|e| panic!("{name}: {e}")),
        )
    };
    let mut rules = Vec::new();
    for (logical, resource) in resources(template) {
        match resource["Type"].as_str().unwrap_or_default() {
            "AWS::Serverless::Function" => {
                let events = resource["Properties"]["Events"].as_mapping();
                for (event, definition) in events.into_iter().flatten() {
                    let kind = definition["Type"].as_str().unwrap_or_default();
                    if kind != "EventBridgeRule" && kind != "CloudWatchEvent" {
                        continue;
                    }
                    let name = format!("{logical}{}", event.as_str().unwrap_or_default());
                    let properties = &definition["Properties"];
                    rules.push(Rule {
                        bus: bus(&name, properties.get("EventBusName")),
                        pattern: resolve(&name, &properties["Pattern"]),
                        name,
                    });
                }
            }
            "AWS::Events::Rule" => {
                let properties = &resource["Properties"];
                if let Some(pattern) = properties.get("EventPattern") {
                    rules.push(Rule {
                        name: logical.to_owned(),
                        bus: bus(logical, properties.get("EventBusName")),
                        pattern: resolve(logical, pattern),
                    });
                }
            }
            _ => {}
        }
    }
    rules
}

#[test]
fn release_stalled_goes_wherever_release_failed_goes() {
    // Given the template's rules (none routes archgate's own events today: consumers subscribe
    // to the archgate bus themselves)
    let template = template();
    let resolver = Resolver::new(&template, &[]);
    // Then any rule that takes `Release Failed` takes `Release Stalled` too: a release that
    // cannot be signed or promoted is news for whoever watches failures
    for rule in rules(&template, &resolver) {
        let types: Vec<&str> = rule.pattern["detail-type"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        assert!(
            !types.contains(&"Release Failed") || types.contains(&"Release Stalled"),
            "{} routes Release Failed but not Release Stalled",
            rule.name
        );
    }
}

/// The comparison operators moto 5.2.5 evaluates (moto/events/models.py, EventPattern), plus
/// `$or`. `wildcard` is among them, with EventBridge's meaning (`*` matches any run of
/// characters, `/` included; `\*` is a literal star), so the S3 rule's `<prefix>*.zip` is
/// evaluated as written, not translated. Any other operator is accepted by moto's PutRule and
/// then matches every value, so a pattern using one would pass here whatever it said: the
/// test refuses such patterns instead.
const EMULATED_OPERATORS: [&str; 8] = [
    "prefix",
    "suffix",
    "wildcard",
    "anything-but",
    "equals-ignore-case",
    "numeric",
    "exists",
    "cidr",
];

/// The operators of a pattern that the emulator cannot evaluate.
fn unemulated_operators(pattern: &Json, path: &str, found: &mut Vec<String>) {
    let Json::Object(fields) = pattern else {
        return;
    };
    for (key, value) in fields {
        let at = format!("{path}.{key}");
        match value {
            // "$or" holds alternative sub-patterns.
            Json::Array(alternatives) if key == "$or" => {
                for alternative in alternatives {
                    unemulated_operators(alternative, &at, found);
                }
            }
            Json::Array(filters) => {
                for operator in filters.iter().filter_map(Json::as_object) {
                    for name in operator.keys() {
                        if !EMULATED_OPERATORS.contains(&name.as_str()) {
                            found.push(format!("{at}: {name}"));
                        }
                    }
                }
            }
            nested => unemulated_operators(nested, &at, found),
        }
    }
}

/// The samples in events/, by file name.
fn samples() -> BTreeMap<String, Json> {
    let dir = workspace().join("events");
    let mut samples = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            samples.insert(name, event);
        }
    }
    samples
}

const INSPECTOR_RULE: &str = "ScanGateFunctionInspectorScan";

/// Which samples each rule must deliver, decided from the samples' names and meaning (see
/// events/README.md), not from the patterns. The Inspector rule's expectation is the one
/// exception: whether `team/myapp` is this stack's repository depends on the parameters, so
/// it is computed from the resolved pattern.
fn expected_routes(rule: &Rule, sample: &str, event: &Json) -> Option<bool> {
    let not_codebuild_final = [
        "codebuild-other-project.json",
        "codebuild-amd64-in-progress.json",
    ];
    Some(match rule.name.as_str() {
        // releases/%%%.zip (s3-object-created-empty-stem.json) is <prefix>*.zip: the rule
        // delivers it and start-builds rejects it (the stem sanitises to no usable tag).
        "StartBuildsFunctionSourceObjectCreated" => matches!(
            sample,
            "s3-object-created.json"
                | "s3-object-created-multipart.json"
                | "s3-object-created-empty-stem.json"
        ),
        // The final states of the three projects: not another project, not IN_PROGRESS.
        "BuildCompletedFunctionBuildStateChange" => {
            sample.starts_with("codebuild-") && !not_codebuild_final.contains(&sample)
        }
        "ScanGateFunctionEcrImageScan" => sample.starts_with("ecr-scan-"),
        INSPECTOR_RULE => {
            let repositories = &rule.pattern["detail"]["repository-name"];
            event["source"] == "aws.inspector2"
                && event["detail-type"] == "Inspector2 Scan"
                && repositories
                    .as_array()
                    .is_some_and(|names| names.contains(&event["detail"]["repository-name"]))
        }
        "ScanGateFunctionInspectorFinding" => {
            let prefix = rule.pattern["resources"][0]["prefix"]
                .as_str()
                .unwrap_or("-");
            event["source"] == "aws.inspector2"
                && event["detail-type"] == "Inspector2 Finding"
                && event["resources"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|a| a.as_str().is_some_and(|a| a.starts_with(prefix)))
                })
        }
        _ => return None,
    })
}

#[tokio::test]
async fn each_rule_delivers_exactly_the_samples_it_is_meant_for() {
    // Given the template's rules resolved with the parameter defaults
    let template = template();
    let resolver = Resolver::new(&template, &[]);
    let rules = rules(&template, &resolver);
    assert!(!rules.is_empty(), "no EventBridge rules in template.yaml");
    let mut problems = Vec::new();
    for rule in &rules {
        // AWS services publish to the default bus only.
        if rule.bus != "default" {
            problems.push(format!(
                "{} listens on bus {:?}; AWS service events arrive on the default bus",
                rule.name, rule.bus
            ));
        }
        let mut operators = Vec::new();
        unemulated_operators(&rule.pattern, "", &mut operators);
        if !operators.is_empty() {
            problems.push(format!(
                "{}: the emulator cannot evaluate {operators:?}",
                rule.name
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));

    // And the samples, plus the Inspector sample rewritten to name this stack's repository
    let mut samples = samples();
    let repository_arn = resolver
        .get_att("Repository", "Arn")
        .expect("the repository ARN");
    let mut own_inspector_scan = samples["inspector2-scan.json"].clone();
    own_inspector_scan["detail"]["repository-name"] = repository_arn.clone();
    own_inspector_scan["resources"] = json!([repository_arn]);
    let own_inspector_name = "inspector2-scan.json (repository-name = this stack's repository)";
    samples.insert(own_inspector_name.to_owned(), own_inspector_scan);

    // And each rule created on the emulator's default bus with one SQS queue as its target
    let env = installation(ManifestMode::Native).await;
    let events = &env.clients.eventbridge;
    let sqs = aws_sdk_sqs::Client::new(&env.sdk);
    let queues = route_to_queues(events, &sqs, &rules, "route").await;

    // When every sample is put on the default bus (PutEvents cannot set account and region;
    // no rule filters on them)
    let mut sent = HashMap::new();
    for (name, event) in &samples {
        let time = event["time"].as_str().expect("sample time");
        let entry = PutEventsRequestEntry::builder()
            .source(event["source"].as_str().expect("sample source"))
            .detail_type(event["detail-type"].as_str().expect("sample detail-type"))
            .detail(event["detail"].to_string())
            .set_resources(Some(
                event["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect(),
            ))
            .time(DateTime::from_str(time, DateTimeFormat::DateTime).expect("RFC 3339 time"))
            .build();
        let out = events
            .put_events()
            .entries(entry)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutEvents {name}: {e:?}"));
        assert_eq!(out.failed_entry_count(), 0, "PutEvents {name}: {out:?}");
        let id = out.entries()[0].event_id().expect("event id").to_owned();
        sent.insert(id, name.clone());
    }

    // Then each queue holds exactly the samples its rule is meant for, unchanged
    let mut delivered_by = BTreeMap::new();
    for rule in &rules {
        let mut delivered = BTreeSet::new();
        for body in drain(&sqs, &queues[&rule.name]).await {
            let id = body["id"].as_str().unwrap_or_default();
            let Some(name) = sent.get(id) else {
                problems.push(format!("{}: delivered an unknown event {body}", rule.name));
                continue;
            };
            if body["detail"] != samples[name]["detail"] {
                problems.push(format!("{}: {name} arrived with another detail", rule.name));
            }
            delivered.insert(name.clone());
        }
        let mut expected = BTreeSet::new();
        for (name, event) in &samples {
            match expected_routes(rule, name, event) {
                Some(true) => {
                    expected.insert(name.clone());
                }
                Some(false) => {}
                None => {
                    problems.push(format!(
                        "{}: no routing expectation; add one to expected_routes",
                        rule.name
                    ));
                    break;
                }
            }
        }
        for missed in expected.difference(&delivered) {
            problems.push(format!("{} does not deliver {missed}", rule.name));
        }
        for extra in delivered.difference(&expected) {
            problems.push(format!(
                "{} delivers {extra}, which it should not",
                rule.name
            ));
        }
        delivered_by.insert(rule.name.clone(), delivered);
    }
    let table: Vec<String> = delivered_by
        .iter()
        .map(|(rule, delivered)| format!("{rule}: {delivered:?}"))
        .collect();
    assert!(
        problems.is_empty(),
        "\n{}\n\ndelivered:\n{}",
        problems.join("\n"),
        table.join("\n")
    );

    // And the Inspector rule takes a scan that names this stack's repository by ARN
    let inspector = delivered_by
        .get(INSPECTOR_RULE)
        .unwrap_or_else(|| panic!("template.yaml has no rule {INSPECTOR_RULE}"));
    assert!(
        inspector.contains(own_inspector_name),
        "{INSPECTOR_RULE} delivers {inspector:?}"
    );
}

#[tokio::test]
async fn with_a_namespace_the_scan_rules_take_every_repository_under_it_and_no_other() {
    // Given the scan rules resolved for a deployment with the namespace `apps/`, each on the
    // emulator's default bus with a queue as its target
    let template = template();
    let resolver = Resolver::new(&template, &[("RepositoryPrefix", "apps/")]);
    let rules: Vec<Rule> = rules(&template, &resolver)
        .into_iter()
        .filter(|rule| rule.name.starts_with("ScanGateFunction"))
        .collect();
    assert_eq!(rules.len(), 3, "{rules:?}");
    let env = installation(ManifestMode::Native).await;
    let events = &env.clients.eventbridge;
    let sqs = aws_sdk_sqs::Client::new(&env.sdk);
    let queues = route_to_queues(events, &sqs, &rules, "ns").await;

    // When scans of `myapp` (the default), `apps/web` and `teams/web` are published, as ECR
    // names them and as Inspector does (by ARN; a finding by the image's ARN)
    let arn = |repository: &str| format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}");
    let digest = "sha256:f7ed027418dd7023e9bec5ac36443264e0512043b99acddc0db7ec9604940ed9";
    for repository in ["myapp", "apps/web", "teams/web"] {
        let entries = [
            (
                "aws.ecr",
                "ECR Image Scan",
                json!({"repository-name": repository}),
                vec![],
            ),
            (
                "aws.inspector2",
                "Inspector2 Scan",
                json!({"repository-name": arn(repository)}),
                vec![arn(repository)],
            ),
            (
                "aws.inspector2",
                "Inspector2 Finding",
                json!({"repository": repository}),
                vec![format!("{}/{digest}", arn(repository))],
            ),
        ];
        for (source, detail_type, detail, resources) in entries {
            let entry = PutEventsRequestEntry::builder()
                .source(source)
                .detail_type(detail_type)
                .detail(detail.to_string())
                .set_resources(Some(resources))
                .build();
            let out = events
                .put_events()
                .entries(entry)
                .send()
                .await
                .expect("PutEvents");
            assert_eq!(out.failed_entry_count(), 0, "{out:?}");
        }
    }

    // Then each rule delivers the default repository's scan and apps/web's, and not teams/web's
    for rule in &rules {
        let mut named: Vec<String> = drain(&sqs, &queues[&rule.name])
            .await
            .into_iter()
            .map(|body| {
                let resources = body["resources"].to_string();
                let repository = ["myapp", "apps/web", "teams/web"]
                    .into_iter()
                    .find(|r| {
                        body["detail"]["repository-name"] == json!(r)
                            || body["detail"]["repository-name"] == json!(arn(r))
                            || resources.contains(&format!("{}/sha256:", arn(r)))
                    })
                    .unwrap_or("?");
                repository.to_owned()
            })
            .collect();
        named.sort();
        assert_eq!(named, ["apps/web", "myapp"], "{}", rule.name);
    }
}

/// Creates each rule on the emulator's default bus with a queue of its own (`<prefix>-<rule>`)
/// as its target; the queue URLs by rule name.
async fn route_to_queues(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    rules: &[Rule],
    prefix: &str,
) -> BTreeMap<String, String> {
    let mut queues = BTreeMap::new();
    for rule in rules {
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{}", rule.name))
            .send()
            .await
            .expect("create queue")
            .queue_url()
            .expect("queue url")
            .to_owned();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .expect("queue arn")
            .clone();
        events
            .put_rule()
            .name(&rule.name)
            .event_pattern(rule.pattern.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRule {}: {e:?}", rule.name));
        events
            .put_targets()
            .rule(&rule.name)
            .targets(
                Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutTargets {}: {e:?}", rule.name));
        queues.insert(rule.name.clone(), queue_url);
    }
    queues
}

/// Every event a rule's queue holds (each deleted once read).
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Json> {
    let mut bodies = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if received.messages().is_empty() {
            return bodies;
        }
        for message in received.messages() {
            bodies.push(
                serde_json::from_str(message.body().unwrap_or_default())
                    .expect("an EventBridge event"),
            );
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}
