//! ECR's scan-on-push, played on the emulator: the findings it is told to report and the
//! "ECR Image Scan" event AWS would send.

use super::{aws, LocalEnv, LocalError};
use archgate::domain::Arch;
use archgate_testkit::emulator;
use serde_json::{json, Value};

const ECR_SCAN: &str = include_str!("../../../events/ecr-scan-findings.json");

/// A finding the local scanner reports.
#[derive(Debug, Clone)]
pub struct LocalFinding {
    pub id: &'static str,
    pub severity: &'static str,
    pub package: &'static str,
}

impl LocalEnv {
    /// Plays ECR's scan-on-push for a pushed per-arch image: the scan "happens", the emulator is
    /// told which findings to report for it, and the "ECR Image Scan" event AWS would send is
    /// returned. `status` is `COMPLETE` or `FAILED`.
    pub async fn scan_arch_image(
        &self,
        tag: &str,
        arch: Arch,
        status: &str,
        findings: &[LocalFinding],
    ) -> Result<Value, LocalError> {
        let key = self.key(tag);
        let image_tag = format!("{}-{arch}", key.tag);
        let repository = &key.repository;
        let found = self
            .clients
            .ecr
            .batch_get_image()
            .repository_name(repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(&image_tag)
                    .build(),
            )
            .set_accepted_media_types(Some(
                archgate::domain::oci::ACCEPTED_MEDIA_TYPES
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect(),
            ))
            .send()
            .await
            .map_err(aws(format!("reading {image_tag}")))?;
        let digest = found
            .images()
            .first()
            .and_then(|i| i.image_id())
            .and_then(|id| id.image_digest())
            .ok_or_else(|| LocalError::Invalid(format!("{image_tag} is not in {repository}")))?
            .to_owned();
        self.scan_image_in(repository, &digest, &[image_tag], status, findings)
            .await
    }

    /// Plays a scan of one image by digest (an untagged platform manifest, for example),
    /// reporting `tags` in the event as ECR would.
    pub async fn scan_image(
        &self,
        digest: &str,
        tags: &[String],
        status: &str,
        findings: &[LocalFinding],
    ) -> Result<Value, LocalError> {
        self.scan_image_in(&self.config.repository, digest, tags, status, findings)
            .await
    }

    /// [`LocalEnv::scan_image`] of an image in another of archgate's repositories.
    pub async fn scan_image_in(
        &self,
        repository: &str,
        digest: &str,
        tags: &[String],
        status: &str,
        findings: &[LocalFinding],
    ) -> Result<Value, LocalError> {
        let scanned = self
            .clients
            .ecr
            .start_image_scan()
            .repository_name(repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = scanned {
            // The emulator allows one scan per image a day; a second is a rescan of the same.
            let e = aws_sdk_ecr::Error::from(e);
            if !matches!(e, aws_sdk_ecr::Error::LimitExceededException(_)) {
                return Err(LocalError::Aws {
                    what: format!("scanning {digest}"),
                    source: Box::new(e),
                });
            }
        }
        let mut counts = serde_json::Map::new();
        for finding in findings {
            let entry = counts
                .entry(finding.severity.to_owned())
                .or_insert(json!(0));
            *entry = json!(entry.as_u64().unwrap_or(0) + 1);
        }
        let result = json!({
            "registryId": emulator::ACCOUNT,
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": "local scan"},
            "imageScanFindings": {
                "findings": findings.iter().map(|f| json!({
                    "name": f.id, "severity": f.severity,
                    "uri": format!("https://cve.example/{}", f.id),
                    "attributes": [{"key": "package_name", "value": f.package}, {"key": "package_version", "value": "1.0"}]
                })).collect::<Vec<_>>(),
                "findingSeverityCounts": counts.clone()
            }
        });
        let body = json!({"results": [result], "region": self.region()}).to_string();
        let code = emulator::control_api_post(
            &self.endpoint,
            "/moto-api/static/ecr/scan-finding-results",
            &body,
        )
        .map_err(aws("configuring scan findings"))?;
        if code >= 300 {
            return Err(LocalError::Invalid(format!(
                "the emulator refused the scan findings ({code})"
            )));
        }
        let mut event: Value = serde_json::from_str(ECR_SCAN).expect("sample is JSON");
        event["region"] = json!(self.region());
        event["time"] = json!(time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default());
        event["resources"] = json!([format!(
            "arn:aws:ecr:{}:{}:repository/{repository}",
            self.region(),
            emulator::ACCOUNT
        )]);
        let detail = &mut event["detail"];
        detail["scan-status"] = json!(status);
        detail["repository-name"] = json!(repository);
        detail["image-digest"] = json!(digest);
        detail["image-tags"] = json!(tags);
        if status == "COMPLETE" {
            detail["finding-severity-counts"] = Value::Object(counts);
        } else {
            detail
                .as_object_mut()
                .map(|d| d.remove("finding-severity-counts"));
        }
        Ok(event)
    }

    pub async fn scan_gate(&self, event: Value) -> Value {
        archgate_testkit::routing::dispatch(&self.pipeline, event).await
    }
}
