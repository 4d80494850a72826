//! A whole archgate installation on one machine: the emulator (or `AWS_ENDPOINT_URL`), the
//! provisioned resources, the real handlers, and a local builder playing CodeBuild. The demo
//! and the integration tests both drive releases through this.

use crate::provision::{provision, ProvisionError, ProvisionedResource};
use archgate::aws::{CallLog, Clients, DynamoLedger};
use archgate::config::{
    sample_lookup, RetentionConfig, EVENT_BUS, LEDGER_TABLE, RETENTION_REPOSITORIES,
};
use archgate::domain::release_event::EVENT_SOURCE;
use archgate::domain::{Arch, BuildRole, ManifestMode, ReleaseKey, ReleaseTag};
use archgate::ports::{Ledger, Stored};
use archgate::wiring::AwsPipeline;
use archgate::Config;
use archgate_testkit::builder::{self, EventTemplate, ImageShape, PushedImage};
use archgate_testkit::emulator::{self, Emulator, EmulatorError};
use aws_config::SdkConfig;
use serde_json::{json, Value};
use std::time::Duration;

mod scan;
pub mod session;

pub use scan::LocalFinding;

const S3_OBJECT_CREATED: &str = include_str!("../../../events/s3-object-created.json");

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("{what} failed")]
    Aws {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The error of one AWS call, saying what it was for.
pub(crate) fn aws<E: std::error::Error + Send + Sync + 'static>(
    what: impl Into<String>,
) -> impl FnOnce(E) -> LocalError {
    let what = what.into();
    move |e| LocalError::Aws {
        what,
        source: Box::new(e),
    }
}

/// The configuration a local installation uses unless told otherwise.
pub fn default_config(mode: ManifestMode) -> Config {
    config_with(mode, &[])
}

/// The local configuration with some variables overridden (gate policy, moving tags, …).
pub fn config_with(mode: ManifestMode, overrides: &[(&str, &str)]) -> Config {
    let mut variables = vec![(archgate::config::MANIFEST_MODE, mode.as_str())];
    variables.extend_from_slice(overrides);
    Config::from_lookup(sample_lookup(&variables)).expect("the local configuration is valid")
}

pub struct LocalEnv {
    _emulator: Option<Emulator>,
    pub endpoint: String,
    pub sdk: SdkConfig,
    pub config: Config,
    /// Every AWS call the handlers make.
    pub calls: CallLog,
    pub pipeline: AwsPipeline,
    pub clients: Clients,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub provisioned: Vec<ProvisionedResource>,
    tap_queue: String,
}

const TAP_QUEUE: &str = "archgate-release-events";

impl LocalEnv {
    /// Retention's configuration for this installation: its repository, ledger table and
    /// event bus, with `overrides` on top.
    pub fn retention_config(&self, overrides: &[(&str, &str)]) -> RetentionConfig {
        let mut variables = vec![
            (RETENTION_REPOSITORIES, self.config.repository.as_str()),
            (LEDGER_TABLE, self.config.ledger_table.as_str()),
            (EVENT_BUS, self.config.event_bus.as_str()),
        ];
        variables.extend_from_slice(overrides);
        RetentionConfig::from_lookup(sample_lookup(&variables))
            .expect("the local retention configuration is valid")
    }

    /// Starts a private emulator and provisions `config` on it, in the local region
    /// (`AWS_REGION`, else us-east-1).
    pub async fn start(config: Config) -> Result<Self, LocalError> {
        Self::start_in(config, &emulator::region()).await
    }

    /// Starts a private emulator and provisions `config` on it in `region`.
    pub async fn start_in(config: Config, region: &str) -> Result<Self, LocalError> {
        let emulator = Emulator::start()?;
        let endpoint = emulator.endpoint().to_owned();
        Self::on(Some(emulator), endpoint, config, region).await
    }

    /// Uses an endpoint that is already running (`AWS_ENDPOINT_URL`).
    pub async fn attach(endpoint: String, config: Config) -> Result<Self, LocalError> {
        Self::on(None, endpoint, config, &emulator::region()).await
    }

    async fn on(
        emulator: Option<Emulator>,
        endpoint: String,
        config: Config,
        region: &str,
    ) -> Result<Self, LocalError> {
        let sdk = emulator::sdk_config_in(&endpoint, region).await;
        let provisioned = provision(&sdk, &config).await?;
        let calls = CallLog::default();
        let clients = Clients::with_call_log(&sdk, calls.clone());
        let pipeline = clients.pipeline(&config);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let tap_queue = tap(&sqs, &clients.eventbridge, &config.event_bus, region).await?;
        // Count only what the handlers do from here on.
        calls.take();
        Ok(LocalEnv {
            _emulator: emulator,
            endpoint,
            s3: emulator::s3_client(&sdk),
            sqs,
            sdk,
            config,
            calls,
            pipeline,
            clients,
            provisioned,
            tap_queue,
        })
    }

    /// The release a reference names: `<repository>:<tag>`, or a tag of the default
    /// repository.
    pub fn key(&self, reference: &str) -> ReleaseKey {
        let (repository, tag) = reference
            .rsplit_once(':')
            .unwrap_or((self.config.repository.as_str(), reference));
        ReleaseKey::new(repository, ReleaseTag::parse(tag).expect("valid tag"))
    }

    /// The upload key of a release reference: `<repository>:<tag>` names a repository of the
    /// namespace by the key's folder.
    pub fn upload_key(&self, reference: &str) -> String {
        let key = self.key(reference);
        let folder = match key.repository == self.config.repository {
            true => String::new(),
            false => format!("{}/", key.repository),
        };
        format!("{}{folder}{}.zip", self.config.source_prefix, key.tag)
    }

    /// The region the installation lives in.
    pub fn region(&self) -> String {
        self.sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_else(emulator::region)
    }

    /// Uploads a build context and returns the S3 "Object Created" event EventBridge sends.
    pub async fn upload(&self, key: &str, body: Vec<u8>) -> Result<Value, LocalError> {
        let size = body.len();
        let put = self
            .s3
            .put_object()
            .bucket(&self.config.source_bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .map_err(aws(format!("upload of {key}")))?;
        let mut event: Value = serde_json::from_str(S3_OBJECT_CREATED).expect("sample is JSON");
        event["resources"] = json!([format!("arn:aws:s3:::{}", self.config.source_bucket)]);
        event["region"] = json!(self.region());
        // S3 stamps each upload with its time and a sequencer that grows per key.
        let now = time::OffsetDateTime::now_utc();
        event["time"] = json!(now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default());
        event["detail"]["object"]["sequencer"] =
            json!(format!("{:020X}", now.unix_timestamp_nanos()));
        let detail = &mut event["detail"];
        detail["bucket"]["name"] = json!(self.config.source_bucket);
        detail["object"]["key"] = json!(key);
        detail["object"]["size"] = json!(size);
        detail["object"]["etag"] = json!(put.e_tag().unwrap_or_default().trim_matches('"'));
        match put.version_id() {
            Some(version) => detail["object"]["version-id"] = json!(version),
            None => {
                detail["object"]
                    .as_object_mut()
                    .map(|o| o.remove("version-id"));
            }
        }
        Ok(event)
    }

    pub async fn start_builds(&self, event: Value) -> Value {
        archgate_testkit::routing::dispatch(&self.pipeline, event).await
    }

    pub async fn build_completed(&self, event: Value) -> Value {
        archgate_testkit::routing::dispatch(&self.pipeline, event).await
    }

    pub async fn release(&self, tag: &str) -> Result<Option<Stored>, LocalError> {
        DynamoLedger::new(self.clients.dynamodb.clone(), &self.config.ledger_table)
            .load(&self.key(tag))
            .await
            .map_err(aws(format!("ledger read of {tag}")))
    }

    /// Plays one arch build: on success pushes the image as arch.yml would; returns the
    /// state-change event CodeBuild would send.
    pub async fn finish_arch_build(
        &self,
        tag: &str,
        arch: Arch,
        status: &str,
        shape: ImageShape,
    ) -> Result<(Value, Option<PushedImage>), LocalError> {
        let stored = self
            .release(tag)
            .await?
            .ok_or_else(|| LocalError::Invalid(format!("no release {tag} in the ledger")))?;
        let role = BuildRole::arch(arch);
        let build_id =
            stored.release.build(role).build_id.clone().ok_or_else(|| {
                LocalError::Invalid(format!("{tag}: no {arch} build was started"))
            })?;
        let key = self.key(tag);
        let pushed = if status == "SUCCEEDED" {
            Some(
                builder::push_arch_image(
                    &self.clients.ecr,
                    &key.repository,
                    &key.tag,
                    arch,
                    stored.release.source.revision(),
                    shape,
                )
                .await
                .map_err(aws(format!("push of {tag}-{arch}")))?,
            )
        } else {
            None
        };
        let project = self
            .config
            .project_for(role)
            .expect("arch projects are configured");
        // CodeBuild echoes the build's environment in its state change: what archgate's
        // StartBuild gave it (the emulator drops the overrides, so they are made again).
        let environment = archgate::pipeline::build_request(&self.config, &stored.release, role)
            .map_err(|e| LocalError::Invalid(format!("{tag}: {e}")))?
            .environment;
        let template = match arch {
            Arch::Amd64 => EventTemplate::Amd64,
            Arch::Arm64 => EventTemplate::Arm64,
        };
        let event = builder::state_change_event(template, project, &build_id, status, &environment);
        let event = match &pushed {
            Some(image) => {
                builder::with_exported(event, &builder::exported_by_build(arch, &image.digest))
            }
            None => event,
        };
        Ok((event, pushed))
    }

    /// The release events published so far (read from an SQS queue the bus routes to).
    pub async fn release_events(&self) -> Result<Vec<Value>, LocalError> {
        let mut events = Vec::new();
        for _ in 0..20 {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.tap_queue)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(aws("reading release events"))?;
            let messages = output.messages();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                if let Some(body) = message.body() {
                    events.push(serde_json::from_str(body).unwrap_or(Value::Null));
                }
                if let Some(receipt) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.tap_queue)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(aws("acknowledging a release event"))?;
                }
            }
        }
        Ok(events)
    }
}

/// Routes every `archgate` event on the bus to an SQS queue, so local runs can see them.
async fn tap(
    sqs: &aws_sdk_sqs::Client,
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    region: &str,
) -> Result<String, LocalError> {
    let queue_url = sqs
        .create_queue()
        .queue_name(TAP_QUEUE)
        .send()
        .await
        .map_err(aws("creating the release-event queue"))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let queue_arn = format!("arn:aws:sqs:{region}:{}:{TAP_QUEUE}", emulator::ACCOUNT);
    events
        .put_rule()
        .name("archgate-release-events-tap")
        .event_bus_name(bus)
        .event_pattern(json!({"source": [EVENT_SOURCE]}).to_string())
        .send()
        .await
        .map_err(aws("creating the release-event rule"))?;
    events
        .put_targets()
        .rule("archgate-release-events-tap")
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(queue_arn)
                .build()
                .map_err(aws("building the tap target"))?,
        )
        .send()
        .await
        .map_err(aws("targeting the release-event queue"))?;
    Ok(queue_url)
}

/// A small but real Docker build context.
pub fn sample_build_context(name: &str) -> Vec<u8> {
    use std::io::Write;
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default();
        let files = [
            ("Dockerfile", "FROM public.ecr.aws/docker/library/alpine:3.20\nCOPY app.sh /app.sh\nENTRYPOINT [\"/bin/sh\", \"/app.sh\"]\n".to_owned()),
            ("app.sh", format!("#!/bin/sh\necho \"{name} on $(uname -m)\"\n")),
        ];
        for (path, content) in files {
            zip.start_file(path, options).expect("zip entry");
            zip.write_all(content.as_bytes()).expect("zip write");
        }
        zip.finish().expect("zip finish");
    }
    buffer.into_inner()
}

/// How long a step took, in milliseconds with one decimal.
pub fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
