//! The AWS operations archgate calls, as values: the in-memory services inject faults by
//! operation, the simulation starts and ends outages of one, the figures count them.

use std::fmt;

/// One operation of one service, as the service's API reference spells both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    pub service: &'static str,
    pub name: &'static str,
}

impl Operation {
    pub const fn new(service: &'static str, name: &'static str) -> Self {
        Operation { service, name }
    }
}

/// `Service.Operation` (`ECR.PutImage`).
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.name)
    }
}

pub const CODEBUILD_BATCH_GET_BUILDS: Operation = Operation::new("CodeBuild", "BatchGetBuilds");
pub const CODEBUILD_START_BUILD: Operation = Operation::new("CodeBuild", "StartBuild");
pub const CODEBUILD_STOP_BUILD: Operation = Operation::new("CodeBuild", "StopBuild");
pub const DYNAMODB_GET_ITEM: Operation = Operation::new("DynamoDB", "GetItem");
pub const DYNAMODB_PUT_ITEM: Operation = Operation::new("DynamoDB", "PutItem");
pub const DYNAMODB_SCAN: Operation = Operation::new("DynamoDB", "Scan");
pub const DYNAMODB_UPDATE_ITEM: Operation = Operation::new("DynamoDB", "UpdateItem");
pub const ECR_BATCH_CHECK_LAYER_AVAILABILITY: Operation =
    Operation::new("ECR", "BatchCheckLayerAvailability");
pub const ECR_BATCH_DELETE_IMAGE: Operation = Operation::new("ECR", "BatchDeleteImage");
pub const ECR_BATCH_GET_IMAGE: Operation = Operation::new("ECR", "BatchGetImage");
pub const ECR_COMPLETE_LAYER_UPLOAD: Operation = Operation::new("ECR", "CompleteLayerUpload");
pub const ECR_DESCRIBE_IMAGES: Operation = Operation::new("ECR", "DescribeImages");
pub const ECR_DESCRIBE_IMAGE_SCAN_FINDINGS: Operation =
    Operation::new("ECR", "DescribeImageScanFindings");
pub const ECR_CREATE_REPOSITORY: Operation = Operation::new("ECR", "CreateRepository");
pub const ECR_PUT_IMAGE_TAG_MUTABILITY: Operation = Operation::new("ECR", "PutImageTagMutability");
pub const ECR_DESCRIBE_REPOSITORIES: Operation = Operation::new("ECR", "DescribeRepositories");
pub const ECR_INITIATE_LAYER_UPLOAD: Operation = Operation::new("ECR", "InitiateLayerUpload");
pub const ECR_PUT_IMAGE: Operation = Operation::new("ECR", "PutImage");
pub const ECR_UPLOAD_LAYER_PART: Operation = Operation::new("ECR", "UploadLayerPart");
pub const ECS_DESCRIBE_SERVICES: Operation = Operation::new("ECS", "DescribeServices");
pub const ECS_DESCRIBE_TASKS: Operation = Operation::new("ECS", "DescribeTasks");
pub const ECS_DESCRIBE_TASK_DEFINITION: Operation = Operation::new("ECS", "DescribeTaskDefinition");
pub const ECS_LIST_CLUSTERS: Operation = Operation::new("ECS", "ListClusters");
pub const ECS_LIST_SERVICES: Operation = Operation::new("ECS", "ListServices");
pub const ECS_LIST_TASKS: Operation = Operation::new("ECS", "ListTasks");
pub const ECS_LIST_TASK_DEFINITIONS: Operation = Operation::new("ECS", "ListTaskDefinitions");
pub const EVENTBRIDGE_PUT_EVENTS: Operation = Operation::new("EventBridge", "PutEvents");
pub const KMS_DESCRIBE_KEY: Operation = Operation::new("KMS", "DescribeKey");
pub const KMS_GET_PUBLIC_KEY: Operation = Operation::new("KMS", "GetPublicKey");
pub const KMS_SIGN: Operation = Operation::new("KMS", "Sign");
pub const LAMBDA_GET_FUNCTION: Operation = Operation::new("Lambda", "GetFunction");
pub const LAMBDA_LIST_FUNCTIONS: Operation = Operation::new("Lambda", "ListFunctions");
