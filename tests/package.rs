//! What is deployed against what is built: template.yaml's functions, `./dev package`
//! (tools/package.sh) and samconfig.toml agree on the function names, the binaries, where
//! the packages are and the architecture they are built for.
//!
//! Static: it reads the files and builds nothing. template.yaml is parsed with serde_yaml,
//! which keeps CloudFormation's short-form tags (`!Ref`, …) as tagged values.

use archgate_integration_tests::workspace::{manifest_names, read, template, workspace};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;

/// The template's `AWS::Serverless::Function` resources by logical id.
fn functions(template: &Yaml) -> Vec<(String, Yaml)> {
    template["Resources"]
        .as_mapping()
        .expect("template.yaml has Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(logical, resource)| {
            let logical = logical
                .as_str()
                .expect("logical ids are strings")
                .to_owned();
            (logical, resource.clone())
        })
        .collect()
}

/// What tools/package.sh builds, read from its top-level assignments.
struct Package {
    /// `FUNCTIONS=(…)`: the binaries packaged, one per function.
    functions: Vec<String>,
    /// `ARCHITECTURE=…`: the architecture built without a flag.
    default_architecture: String,
    /// `OUT=…`: where `<function>/bootstrap.zip` are written.
    out: String,
    /// The architectures it can build: the default and each `--flag) ARCHITECTURE=…`.
    architectures: BTreeSet<String>,
}

fn package() -> Package {
    let script = read("tools/package.sh");
    let assigned = |name: &str| -> String {
        let values: Vec<&str> = script
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("{name}=")))
            .collect();
        let [value] = values.as_slice() else {
            panic!("tools/package.sh should assign {name} exactly once at the top level, it does {values:?}");
        };
        value.trim().to_owned()
    };
    let functions = assigned("FUNCTIONS");
    let functions = functions
        .strip_prefix('(')
        .and_then(|list| list.strip_suffix(')'))
        .unwrap_or_else(|| panic!("tools/package.sh: FUNCTIONS={functions} is not a (…) list"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let default_architecture = assigned("ARCHITECTURE");
    let mut architectures = BTreeSet::from([default_architecture.clone()]);
    for line in script.lines().map(str::trim) {
        if let Some((pattern, action)) = line.split_once(')') {
            if pattern.starts_with("--") {
                if let Some(architecture) = action.trim().strip_prefix("ARCHITECTURE=") {
                    architectures.insert(architecture.trim_end_matches(" ;;").trim().to_owned());
                }
            }
        }
    }
    Package {
        functions,
        default_architecture,
        out: assigned("OUT"),
        architectures,
    }
}

/// samconfig.toml's `key = value` settings as (table, key, value), comments left out.
fn samconfig() -> Vec<(String, String, String)> {
    let mut table = String::new();
    let mut settings = Vec::new();
    for line in read("samconfig.toml").lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            settings.push((
                table.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
    }
    settings
}

#[test]
fn every_function_deploys_the_zip_that_package_builds_for_it_and_nothing_else() {
    // Given the template's functions and what tools/package.sh writes
    let template = template();
    let package = package();
    let mut problems = Vec::new();

    // When each function's code is looked up
    let mut deployed = BTreeSet::new();
    for (logical, function) in functions(&template) {
        let code_uri = function["Properties"]["CodeUri"]
            .as_str()
            .unwrap_or_default();
        // Then it is one of the zips, given as it is (SAM compiles nothing: no BuildMethod)
        match code_uri
            .strip_prefix(&format!("{}/", package.out))
            .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
        {
            Some(binary) if package.functions.iter().any(|f| f == binary) => {
                if !deployed.insert(binary.to_owned()) {
                    problems.push(format!("{logical}: {code_uri} is deployed twice"));
                }
            }
            _ => problems.push(format!(
                "{logical}: CodeUri {code_uri:?} is not {}/<function>/bootstrap.zip of a \
                 function in tools/package.sh's FUNCTIONS {:?}",
                package.out, package.functions
            )),
        }
        if !function["Metadata"]["BuildMethod"].is_null() {
            problems.push(format!(
                "{logical}: Metadata.BuildMethod {:?} would make sam build compile it again \
                 instead of deploying the package",
                function["Metadata"]["BuildMethod"]
            ));
        }
        if !matches!(
            function["Properties"]["PackageType"].as_str(),
            None | Some("Zip")
        ) {
            problems.push(format!("{logical}: PackageType is not Zip"));
        }
    }
    // And every package is deployed, by the runtime and handler a bootstrap needs
    for function in &package.functions {
        if !deployed.contains(function) {
            problems.push(format!(
                "{function} is packaged, and no function deploys it"
            ));
        }
    }
    let globals = &template["Globals"]["Function"];
    if globals["Runtime"].as_str() != Some("provided.al2023") {
        problems.push(format!(
            "Globals Runtime is {:?}, not provided.al2023",
            globals["Runtime"]
        ));
    }
    if globals["Handler"].as_str() != Some("bootstrap") {
        problems.push(format!(
            "Globals Handler is {:?}, not bootstrap",
            globals["Handler"]
        ));
    }
    // And the packages are build output, never committed
    let ignored = read(".gitignore");
    let out_root = package.out.split('/').next().unwrap_or_default();
    if !ignored.lines().any(|l| l.trim() == format!("/{out_root}")) {
        problems.push(format!(".gitignore does not ignore /{out_root}"));
    }

    assert!(
        !package.functions.is_empty(),
        "tools/package.sh packages nothing"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_packaged_function_is_the_one_binary_of_its_workspace_package_and_every_crate_is_packaged()
{
    // Given the functions tools/package.sh builds (it selects package archgate-<function>)
    let package = package();
    let workspace_manifest = read("Cargo.toml");
    let mut problems = Vec::new();

    // When each is looked up among the crates under functions/
    let crates: BTreeSet<String> = std::fs::read_dir(workspace().join("functions"))
        .expect("functions/")
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    for function in &package.functions {
        // Then it is a workspace member whose package and one binary have the expected names
        if !workspace_manifest.contains(&format!("\"functions/{function}\"")) {
            problems.push(format!("functions/{function} is not a workspace member"));
        }
        let Ok(manifest) = std::fs::read_to_string(
            workspace()
                .join("functions")
                .join(function)
                .join("Cargo.toml"),
        ) else {
            problems.push(format!("functions/{function}/Cargo.toml does not exist"));
            continue;
        };
        let (name, bins) = manifest_names(&manifest);
        if name.as_deref() != Some(&format!("archgate-{function}")) {
            problems.push(format!(
                "functions/{function} is the package {name:?}, not archgate-{function}"
            ));
        }
        if bins != [function.clone()] {
            problems.push(format!(
                "functions/{function} has the binaries {bins:?}, not just [[bin]] {function}"
            ));
        }
    }
    // And no crate under functions/ is left out of the packages
    for dir in &crates {
        if !package.functions.contains(dir) {
            problems.push(format!(
                "functions/{dir} is not in tools/package.sh's FUNCTIONS"
            ));
        }
    }

    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn package_builds_by_default_for_the_architecture_the_template_deploys_by_default() {
    // Given the template's Architecture parameter and the architectures package builds
    let template = template();
    let package = package();
    let parameter = &template["Parameters"]["Architecture"];

    // When the default deployment and the default package are compared
    let default = parameter["Default"].as_str();

    // Then they are the same architecture
    assert_eq!(
        default,
        Some(package.default_architecture.as_str()),
        "template.yaml deploys {default:?} by default, `./dev package` builds {}",
        package.default_architecture
    );
    // And every architecture the template allows can be packaged, and no other
    let allowed: BTreeSet<String> = parameter["AllowedValues"]
        .as_sequence()
        .expect("Architecture has AllowedValues")
        .iter()
        .map(|v| v.as_str().expect("architectures are strings").to_owned())
        .collect();
    assert_eq!(
        allowed, package.architectures,
        "template's AllowedValues vs tools/package.sh"
    );
    // And every function takes its architecture from the parameter (Globals), none its own
    let globals = serde_yaml::to_string(&template["Globals"]["Function"]["Architectures"])
        .expect("Architectures as YAML");
    assert_eq!(
        globals.trim(),
        "- !Ref Architecture",
        "Globals Function Architectures"
    );
    for (logical, function) in functions(&template) {
        assert!(
            function["Properties"]["Architectures"].is_null(),
            "{logical} sets its own Architectures instead of the Architecture parameter's"
        );
    }
}

#[test]
fn samconfig_deploys_the_packages_as_built() {
    // Given samconfig.toml's settings
    let settings = samconfig();

    for (table, key, value) in &settings {
        // Then nothing asks sam build to compile (a build method's beta flag, a container)
        // or to resolve CodeUri from another directory than the template's
        assert!(
            !matches!(key.as_str(), "beta_features" | "use_container" | "base_dir"),
            "samconfig.toml [{table}] {key} = {value}: `sam build` only points at the \
             packages of `./dev package`"
        );
        // And a deployment keeps the architecture `./dev package` builds by default
        if key == "parameter_overrides" {
            assert!(
                !value.contains("Architecture="),
                "samconfig.toml [{table}] overrides Architecture ({value}); the packages \
                 `./dev package` builds are for the template's default"
            );
        }
    }
    assert!(
        settings.iter().any(|(_, key, _)| key == "stack_name"),
        "samconfig.toml was not read"
    );
}

#[test]
fn dev_package_runs_the_package_script_with_its_arguments() {
    // Given the developer entry point
    let dev = read("dev");

    // Then its usage names `./dev package` and the package subcommand runs tools/package.sh
    assert!(
        dev.contains("#   ./dev package [--x86_64]"),
        "dev's usage lacks package"
    );
    let subcommand = dev
        .split("\n  package)\n")
        .nth(1)
        .and_then(|rest| rest.split(";;").next())
        .expect("dev has a package) subcommand");
    assert!(
        subcommand.contains("tools/package.sh \"$@\""),
        "dev package does not run tools/package.sh with its arguments:\n{subcommand}"
    );
}
