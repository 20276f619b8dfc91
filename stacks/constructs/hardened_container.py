"""The container settings every JobFleet Fargate task shares (API and workers alike).

- read-only root filesystem, with a writable /tmp from a task-scoped bind-mount volume (Fargate
  ephemeral storage; gone with the task). Fargate creates that volume root-owned 0755 unless the
  image declares `VOLUME ["/tmp"]`, whose owner and mode it then copies: worker_image/Dockerfile
  does, owned by UID 10001 (tests/worker_image/test_dockerfile.py checks every mount path);
- a non-root user (UID 10001, the user worker_image/Dockerfile creates);
- `stopTimeout`: the drain budget between SIGTERM and SIGKILL;
- the awslogs driver into a log group of its own, with the configured retention.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct, IConstruct

from stacks.logs import LogSettings, project_log_group
from stacks.nag import acknowledge

# The image's build context is the repository root, trimmed to worker_image/{Dockerfile,
# requirements.txt,worker/} and jobfleet_contract/ by the patterns beside the Dockerfile.
REPO = Path(__file__).resolve().parents[2]
WORKER_IMAGE_DIR = REPO / "worker_image"
DOCKERFILE = WORKER_IMAGE_DIR / "Dockerfile"


def image_context_exclude() -> list[str]:
    """The build context's exclude patterns (Docker syntax), from worker_image/Dockerfile.dockerignore."""
    lines = (WORKER_IMAGE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
CONTAINER_USER = "10001"
TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"  # the container's only writable path: a VOLUME of the image (see above)


def worker_image_asset(scope: Construct, construct_id: str,
                       platform: ecr_assets.Platform = ecr_assets.Platform.LINUX_AMD64,
                       ) -> ecr_assets.DockerImageAsset:
    """The worker image (one asset per platform, shared by the API, the worker tiers and the Batch jobs)."""
    return ecr_assets.DockerImageAsset(
        scope, construct_id,
        directory=str(REPO),
        file=str(DOCKERFILE.relative_to(REPO)),
        exclude=image_context_exclude(),
        ignore_mode=cdk.IgnoreMode.DOCKER,
        platform=platform,
    )


def fargate_task_definition(scope: Construct, construct_id: str, *, cpu: int, memory_mib: int,
                            architecture: ecs.CpuArchitecture = ecs.CpuArchitecture.X86_64,
                            ephemeral_storage_gib: int | None = None) -> ecs.FargateTaskDefinition:
    """A Linux Fargate task definition (x86-64 or Graviton) with the writable /tmp volume declared;
    ``ephemeral_storage_gib`` None keeps Fargate's default 20 GiB."""
    task_definition = ecs.FargateTaskDefinition(
        scope, construct_id,
        cpu=cpu,
        memory_limit_mib=memory_mib,
        ephemeral_storage_gib=ephemeral_storage_gib,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=architecture,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )
    # A bind mount without a host path is backed by the task's ephemeral storage.
    task_definition.add_volume(name=TMP_VOLUME)
    acknowledge(task_definition, "ECS2",
                "Container environment variables carry only non-secret wiring (queue URLs, "
                "table name, job-type map, limits) and the team's plain `environment` values; "
                "secrets go through the container's Secrets, never variables.")
    # The execution role's only wildcard: ecr:GetAuthorizationToken, which has no resource ARN.
    acknowledge(task_definition.obtain_execution_role(), "IAM5[Resource::*]",
                "ecr:GetAuthorizationToken supports no resource-level permission; image pulls "
                "themselves are scoped to the image repository by CDK.")
    return task_definition


def add_hardened_container(
    task_definition: ecs.FargateTaskDefinition, construct_id: str, *, logs: LogSettings,
    image: ecs.ContainerImage, command: list[str] | None, environment: dict[str, str],
    memory_mib: int, stop_timeout_seconds: int, stream_prefix: str,
    health_check: ecs.HealthCheck | None = None,
    port_mappings: list[ecs.PortMapping] | None = None,
    secrets: dict[str, ecs.Secret] | None = None,
) -> ecs.ContainerDefinition:
    scope = task_definition
    log_group = project_log_group(scope, f"{construct_id}Logs", settings=logs)
    container = task_definition.add_container(
        construct_id,
        image=image,
        command=command,
        environment=environment,
        secrets=secrets or None,
        essential=True,
        # The task's only container gets all of the task's memory as its hard limit: the kernel
        # stops it there instead of the container growing until the whole task is killed.
        memory_limit_mib=memory_mib,
        readonly_root_filesystem=True,
        user=CONTAINER_USER,
        stop_timeout=cdk.Duration.seconds(stop_timeout_seconds),
        logging=ecs.LogDrivers.aws_logs(stream_prefix=stream_prefix, log_group=log_group),
        health_check=health_check,
        port_mappings=port_mappings,
    )
    container.add_mount_points(ecs.MountPoint(container_path=TMP_PATH, source_volume=TMP_VOLUME,
                                              read_only=False))
    return container


def acknowledge_kms_grant_wildcards(role: IConstruct) -> None:
    """The two action wildcards CDK's queue grants add for a customer-managed KMS key."""
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(role, f"IAM5[Action::{action}]",
                    f"{action} comes from CDK's SQS grant on the customer-managed queue key; "
                    "it is limited to that one key ARN, which SQS needs to encrypt messages.")
