"""A tier's own workload in its containers: image, secrets, plain environment, permissions, per-job-type
settings, results and job events. Used by the worker services, the Batch job definitions and the API.

What goes into the template is exactly what the configuration names: secrets as container `Secrets`
(never `Environment`), read granted to the execution role on those secrets only; team permissions as one
policy per role (`TeamPermissions`) built from the validated vocabulary and explicit statements.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig, TierConfig
from jobfleet_config.workload import DEFAULT_EPHEMERAL_GIB, REPO_ROOT, SecretRef, parse_image
from jobfleet_contract import environment as names
from stacks.constructs.results_bucket import ResultsBucketName, grant_results
from stacks.nag import acknowledge

PLATFORMS = {"x86_64": ecr_assets.Platform.LINUX_AMD64, "arm64": ecr_assets.Platform.LINUX_ARM64}
CPU_ARCHITECTURES = {"x86_64": ecs.CpuArchitecture.X86_64, "arm64": ecs.CpuArchitecture.ARM64}
_COMPLETE_SECRET_ARN = r"-[A-Za-z0-9]{6}$"

S3_READ = ("s3:GetObject",)
S3_WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
VERB_ACTIONS = {
    "dynamodb:read": ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"),
    "dynamodb:write": ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                       "dynamodb:BatchWriteItem"),
    "sns:publish": ("sns:Publish",),
    "sqs:send": ("sqs:SendMessage",),
    "lambda:invoke": ("lambda:InvokeFunction",),
}


def fargate_storage_gib(tier: TierConfig) -> int | None:
    """Fargate ephemeral storage to set, or None for Fargate's default."""
    return tier.ephemeral_storage_gib if tier.ephemeral_storage_gib > DEFAULT_EPHEMERAL_GIB else None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def container_image(scope: Construct, image: str, architecture: str, *, worker_image: str,
                    default_asset_id: str = "WorkerImage") -> ecs.ContainerImage:
    """The image a tier (or the API) runs (its configured ``image``), created once per stack and reused.

    Default (``image`` empty): the worker image, i.e. ``worker_image`` when CI passed a prebuilt one
    (`-c image=...`), else worker_image/ plus jobs/ built for the tier's architecture (the x86-64
    one keeps the released construct ID). A build directory: an asset of its own. A prebuilt ECR
    reference: imported repository, so the execution role may pull from it; any other registry by URI.
    """
    spec = parse_image(image or worker_image)
    stack = cdk.Stack.of(scope)
    if spec.prebuilt:
        if spec.ecr_account:
            repo_id = f"Repository-{_slug(spec.repository)}"
            found = cast(ecr.IRepository | None, stack.node.try_find_child(repo_id))
            repository = found or ecr.Repository.from_repository_attributes(
                stack, repo_id, repository_name=spec.repository,
                repository_arn=f"arn:{spec.ecr_partition}:ecr:{spec.ecr_region}:{spec.ecr_account}:"
                               f"repository/{spec.repository}")
            return ecs.ContainerImage.from_ecr_repository(repository, spec.digest or spec.tag)
        return ecs.ContainerImage.from_registry(spec.reference)
    from stacks.constructs.hardened_container import worker_image_asset  # the one worker image recipe

    if spec.directory:
        asset_id = f"Image-{_slug(spec.directory)}-{architecture}"
    else:
        asset_id = default_asset_id if architecture == "x86_64" else f"{default_asset_id}-{architecture}"
    asset = cast(ecr_assets.DockerImageAsset | None, stack.node.try_find_child(asset_id))
    if asset is None:
        if spec.directory:
            asset = ecr_assets.DockerImageAsset(stack, asset_id, directory=str(REPO_ROOT / spec.directory),
                                                platform=PLATFORMS[architecture])
        else:
            asset = worker_image_asset(stack, asset_id, platform=PLATFORMS[architecture])
    return ecs.ContainerImage.from_docker_image_asset(asset)


def _secret_source(scope: Construct, name: str, ref: SecretRef):
    construct_id = f"Secret-{name}"
    if ref.source == "ssm":
        return ssm.StringParameter.from_secure_string_parameter_attributes(
            scope, construct_id, parameter_name=ref.name)
    if ref.arn and re.search(_COMPLETE_SECRET_ARN, ref.arn):
        return secretsmanager.Secret.from_secret_complete_arn(scope, construct_id, ref.arn)
    if ref.arn:
        return secretsmanager.Secret.from_secret_partial_arn(scope, construct_id, ref.arn)
    return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, ref.name)


def container_secrets(scope: Construct, tier: TierConfig, kind: Any = ecs.Secret) -> dict[str, Any]:
    """The tier's container secrets as ``kind`` (ecs.Secret for ECS, batch.Secret for AWS Batch);
    adding them to a container grants its execution role read on exactly these."""
    secrets = {}
    for name, ref in tier.secrets.items():
        source = _secret_source(scope, name, ref)
        secrets[name] = (kind.from_ssm_parameter(source) if ref.source == "ssm"
                         else kind.from_secrets_manager(source, ref.json_key or None))
    return secrets


def grant_secrets_key(scope: Construct, tier: TierConfig, execution_role: iam.IRole) -> None:
    """kms:Decrypt for the secrets' customer-managed key, when one is named."""
    if tier.secrets_kms_key_arn:
        key = kms.Key.from_key_arn(scope, "SecretsKey", tier.secrets_kms_key_arn)
        key.grant_decrypt(execution_role)


def team_permissions(scope: Construct, tier: TierConfig, role: iam.IRole) -> iam.Policy | None:
    """The tier's `permissions` and `iam_statements` as one policy on ``role``."""
    statements: list[iam.PolicyStatement] = []
    wildcards: list[str] = []
    partition = cdk.Aws.PARTITION
    for verb, resources in tier.permissions.items():
        if verb.startswith("s3:"):
            for path in resources:
                bucket, _, prefix = path.partition("/")
                objects = f"arn:{partition}:s3:::{bucket}/{prefix}*"
                actions = S3_READ if verb == "s3:read" else S3_WRITE
                statements.append(iam.PolicyStatement(actions=list(actions), resources=[objects]))
                wildcards.append(f"arn:<AWS::Partition>:s3:::{bucket}/{prefix}*")
                if verb == "s3:read":
                    listing = iam.PolicyStatement(actions=["s3:ListBucket"],
                                                  resources=[f"arn:{partition}:s3:::{bucket}"])
                    if prefix:
                        listing.add_condition("StringLike", {"s3:prefix": [f"{prefix}*"]})
                    statements.append(listing)
        else:
            statements.append(iam.PolicyStatement(actions=list(VERB_ACTIONS[verb]),
                                                  resources=list(resources)))
    for statement in tier.iam_statements:
        statements.append(iam.PolicyStatement(actions=list(statement.actions),
                                              resources=list(statement.resources)))
        wildcards += [r for r in statement.resources if "*" in r]
    if not statements:
        return None
    policy = iam.Policy(scope, "TeamPermissions", roles=[role], statements=statements)
    for resource in dict.fromkeys(wildcards):
        acknowledge(policy, f"IAM5[Resource::{resource}]",
                    f"Named by the team in tiers[{tier.name}] (a key prefix, or Resource \"*\" for actions "
                    "that have no resource-level permissions); validated at synth.")
    return policy


@dataclasses.dataclass(frozen=True)
class JobCompletion:
    """Where a finished job reports, as configured: its result (None: `[results]` disabled), a
    "Job State Change" event (None: `[events]` disabled), and the environment name events carry."""

    results_bucket: ResultsBucketName | None
    event_bus: str | None
    environment_name: str

    @classmethod
    def of(cls, config: EnvironmentConfig) -> JobCompletion:
        return cls(results_bucket=ResultsBucketName.of(config.naming, config.results),
                   event_bus=config.events.bus_name if config.events.enabled else None,
                   environment_name=config.resource_name())

    def environment(self) -> dict[str, str]:
        """RESULTS_BUCKET / JOB_EVENT_BUS / JOBFLEET_ENVIRONMENT."""
        return names.completion_environment(
            results_bucket=self.results_bucket.in_stack() if self.results_bucket else None,
            event_bus=self.event_bus, environment_name=self.environment_name)

    def grant(self, scope: Construct, role: iam.IRole) -> None:
        """Put results (results/* only) and put events on the configured bus (that bus only)."""
        grant_results(self.results_bucket, role, "s3:PutObject", scope)
        if self.event_bus is not None:
            bus = cdk.Stack.of(scope).format_arn(service="events", resource="event-bus",
                                                 resource_name=self.event_bus)
            role.add_to_principal_policy(iam.PolicyStatement(actions=["events:PutEvents"],
                                                             resources=[bus]))
