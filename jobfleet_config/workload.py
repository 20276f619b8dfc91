"""What a team configures about its own workload, per tier and per job type: handlers, image,
environment, secrets, permissions. Validation rules for those keys (used by the config loader), and the
parsed forms the stacks consume.

Every check raises ConfigError with the one-line `<file>: <field> = <value>: <what is allowed>`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_HANDLERS = ("worker.examples",)

ARCHITECTURES = ("x86_64", "arm64")
# The worker's own breaker defaults (WORKER_BREAKER_FAILURES / _COOLDOWN_SECONDS): (failures, seconds).
DEFAULT_BREAKER = (5, 60)
# Fargate: 20 GiB is the default (nothing set); 21-200 GiB are configurable.
DEFAULT_EPHEMERAL_GIB, MAX_EPHEMERAL_GIB = 20, 200

_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
# JobFleet's own container variables (every name in jobfleet_contract.environment — a test keeps this
# list complete — the worker's tuning variables, the image's) and the prefixes AWS and JobFleet reserve:
# a team variable of the same name would silently change how the runtime behaves.
RESERVED_ENV_NAMES = frozenset({
    "TIER", "QUEUE_URL", "DLQ_URL", "MAX_RECEIVE_COUNT", "WORKER_CONCURRENCY", "WORKER_HANDLERS",
    "JOB_MAX_SECONDS", "JOB_TIMEOUTS", "JOB_ISOLATION", "JOB_BREAKERS", "WORKER_STOP_TIMEOUT_SECONDS",
    "HEALTH_FILE", "HEALTH_MAX_AGE_SECONDS", "WORKER_ID", "WORKER_POLL_WAIT_SECONDS",
    "WORKER_BACKOFF_BASE_SECONDS", "WORKER_BACKOFF_MAX_SECONDS", "WORKER_MEMORY_HIGH_WATER",
    "WORKER_MEMORY_LOW_WATER", "WORKER_MEMORY_LIMIT_MIB", "WORKER_ISOLATION", "WORKER_RECYCLE_AFTER_JOBS",
    "WORKER_RECYCLE_RSS_MIB", "WORKER_BREAKER_FAILURES", "WORKER_BREAKER_COOLDOWN_SECONDS",
    "STATUS_TABLE", "STATUS_TTL_DAYS", "TIER_QUEUES", "JOB_TYPES", "MAX_PAYLOAD_BYTES",
    "TIER_MAX_PAYLOAD_BYTES", "PORT", "API_HOST", "JOB_ENVELOPE", "MAX_REDRIVES", "RESULTS_BUCKET",
    "RESULTS_INLINE_MAX_BYTES", "RESULTS_URL_SECONDS", "JOB_EVENT_BUS", "LOG_LEVEL",
    "JOB_QUEUE", "JOB_DEFINITION", "JOB_NAME",
    "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL", "WAKE_SERVICES", "WAKE_INTERVAL_SECONDS",
    "AUTH_MODE", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL", "AUTH_SCOPES", "RATE_LIMIT_PER_CLIENT",
    "PYTHONPATH", "PATH", "HOME", "MALLOC_MMAP_THRESHOLD_", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
})
RESERVED_ENV_PREFIXES = ("AWS_", "ECS_", "JOBFLEET_")

_ACCOUNT = r"\d{12}"
_REGION = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
_PARTITION = r"arn:aws(-cn|-us-gov|-iso[a-z-]*)?"
_KMS_KEY_ARN = rf"^{_PARTITION}:kms:{_REGION}:{_ACCOUNT}:key/[0-9a-f-]{{36}}$"
_SECRET_NAME = r"[A-Za-z0-9/_+=.@-]{1,512}"
_SECRET_ARN = rf"{_PARTITION}:secretsmanager:{_REGION}:{_ACCOUNT}:secret:{_SECRET_NAME}"
_JSON_KEY = r"[A-Za-z0-9_.-]{1,256}"
_SSM_NAME = r"/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*"

# An image reference: a registry host (with a dot or a port, or localhost), a repository, and a tag
# and/or a digest. Anything else is read as a build directory.
_REGISTRY = r"(?P<registry>(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+)(:\d+)?)"
_IMAGE_REF = (rf"^{_REGISTRY}/(?P<repository>[a-z0-9]+([._/-][a-z0-9]+)*)"
              r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$")
_ECR_HOST = rf"^(?P<account>{_ACCOUNT})\.dkr\.ecr\.(?P<region>{_REGION})\.amazonaws\.com(?P<cn>\.cn)?$"

# The permissions vocabulary: verb -> (what a resource is, its pattern).
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_S3_PATH = rf"^{_BUCKET}(/[^*?]*)?$"
_TABLE_ARN = rf"^{_PARTITION}:dynamodb:{_REGION}:{_ACCOUNT}:table/[A-Za-z0-9_.-]{{3,255}}$"
PERMISSION_VERBS: dict[str, tuple[str, str]] = {
    "s3:read": ("a bucket name or bucket/prefix", _S3_PATH),
    "s3:write": ("a bucket name or bucket/prefix", _S3_PATH),
    "dynamodb:read": ("a DynamoDB table ARN", _TABLE_ARN),
    "dynamodb:write": ("a DynamoDB table ARN", _TABLE_ARN),
    "sns:publish": ("an SNS topic ARN",
                    rf"^{_PARTITION}:sns:{_REGION}:{_ACCOUNT}:[A-Za-z0-9_-]{{1,256}}(\.fifo)?$"),
    "sqs:send": ("an SQS queue ARN",
                 rf"^{_PARTITION}:sqs:{_REGION}:{_ACCOUNT}:[A-Za-z0-9_-]{{1,80}}(\.fifo)?$"),
    "lambda:invoke": ("a Lambda function ARN",
                      rf"^{_PARTITION}:lambda:{_REGION}:{_ACCOUNT}:function:[A-Za-z0-9_-]{{1,64}}(:[A-Za-z0-9$_-]+)?$"),
}
# Actions IAM accepts only with Resource "*" (no resource-level permissions); any other action must
# name its resources. Kept short on purpose: extend it with the AWS reference page in hand.
NO_RESOURCE_LEVEL_ACTIONS = frozenset({
    "cloudwatch:PutMetricData", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    "textract:AnalyzeDocument", "textract:DetectDocumentText", "translate:TranslateText",
    "comprehend:DetectSentiment", "comprehend:DetectEntities", "rekognition:DetectLabels",
    "ses:SendEmail", "ses:SendRawEmail",
})
_ACTION = r"^[a-z0-9-]+:[A-Za-z0-9]+$"


class WorkloadError(ValueError):
    """A bad workload value; the loader turns it into a ConfigError naming file and field."""

    def __init__(self, value: Any, allowed: str) -> None:
        super().__init__(allowed)
        self.value, self.allowed = value, allowed


# --- images ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """Where a container's image comes from: JobFleet's worker image, a build directory or a reference."""

    directory: str = ""  # relative to the repository root; "" with no reference = worker_image
    reference: str = ""
    ecr_account: str = ""
    ecr_region: str = ""
    ecr_partition: str = "aws"
    repository: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def prebuilt(self) -> bool:
        return bool(self.reference)

    @property
    def pinned(self) -> bool:
        return bool(self.digest)


def parse_image(value: str) -> ImageSpec:
    """A build directory (relative to the repository root, holding a Dockerfile) or an image reference."""
    if not value:
        return ImageSpec()
    match = re.match(_IMAGE_REF, value)
    if match:
        if not (match["tag"] or match["digest"]):
            raise WorkloadError(value, "an image reference with a :tag or an @sha256:<digest> "
                                       "(a digest is recommended)")
        ecr = re.match(_ECR_HOST, match["registry"])
        return ImageSpec(
            reference=value, repository=match["repository"], tag=match["tag"] or "",
            digest=match["digest"] or "",
            ecr_account=ecr["account"] if ecr else "", ecr_region=ecr["region"] if ecr else "",
            ecr_partition="aws-cn" if ecr and ecr["cn"] else "aws")
    path = Path(value)
    if ":" in value or "@" in value or path.is_absolute() or ".." in path.parts:
        raise WorkloadError(value, "a build directory relative to the repository root (holding a "
                                   "Dockerfile), or <registry>/<repository>:<tag> or "
                                   "<registry>/<repository>@sha256:<digest>")
    if not (REPO_ROOT / path / "Dockerfile").is_file():
        raise WorkloadError(value, f"a directory holding a Dockerfile, relative to {REPO_ROOT.name}/ "
                                   "(or a prebuilt image reference)")
    return ImageSpec(directory=path.as_posix())


def image_warning(spec: ImageSpec) -> str | None:
    if spec.prebuilt and not spec.pinned:
        return (f"mutable tag {spec.tag!r}: a redeploy may run a different image; pin "
                "<registry>/<repository>@sha256:<digest>")
    return None


# --- environment and secrets ------------------------------------------------------------------------

def _string_table(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise WorkloadError(value, f"a table of NAME = \"{what}\" strings")
    for name in value:
        if not re.match(_ENV_NAME, name):
            raise WorkloadError(name, f"variable names matching {_ENV_NAME}")
        if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
            prefixes = ", ".join(RESERVED_ENV_PREFIXES)
            raise WorkloadError(name, "a name JobFleet does not set itself (reserved: JobFleet's "
                                      f"container variables and the prefixes {prefixes})")
    return value


def check_environment(value: Any) -> MappingProxyType[str, str]:
    return MappingProxyType(dict(_string_table(value, "value")))


@dataclasses.dataclass(frozen=True)
class SecretRef:
    """One container secret: Secrets Manager (name or ARN, optional JSON key) or an SSM parameter."""

    source: str  # "secretsmanager" | "ssm"
    name: str = ""  # secret name or SSM parameter name
    arn: str = ""  # complete secret ARN, when given
    json_key: str = ""


_SECRET_FORMS = '"secretsmanager:<name-or-arn>[:json-key]" or "ssm:<parameter-name>"'


def parse_secret(value: str) -> SecretRef:
    if value.startswith("ssm:"):
        name = value.removeprefix("ssm:")
        if re.fullmatch(_SSM_NAME, name):
            return SecretRef("ssm", name=name)
    elif value.startswith("secretsmanager:"):
        rest = value.removeprefix("secretsmanager:")
        if rest.startswith("arn:"):
            arn = re.fullmatch(rf"(?P<arn>{_SECRET_ARN})(:(?P<key>{_JSON_KEY}))?", rest)
            if arn:
                return SecretRef("secretsmanager", arn=arn["arn"], json_key=arn["key"] or "")
        else:
            name, colon, key = rest.partition(":")
            if re.fullmatch(_SECRET_NAME, name) and (not colon or re.fullmatch(_JSON_KEY, key)):
                return SecretRef("secretsmanager", name=name, json_key=key)
    raise WorkloadError(value, _SECRET_FORMS)


def check_secrets(value: Any) -> MappingProxyType[str, SecretRef]:
    table = _string_table(value, "secretsmanager:<name-or-arn>[:json-key] | ssm:<name>")
    return MappingProxyType({name: parse_secret(ref) for name, ref in table.items()})


# --- permissions -------------------------------------------------------------------------------------

def check_permissions(value: Any) -> MappingProxyType[str, tuple[str, ...]]:
    """`{ "s3:read" = ["bucket/prefix/"], "sns:publish" = ["arn:..."] }`: verb -> resources."""
    if not isinstance(value, dict):
        raise WorkloadError(value, f"a table of verb = [resources]; verbs: {', '.join(PERMISSION_VERBS)}")
    checked = {}
    for verb, resources in value.items():
        if verb not in PERMISSION_VERBS:
            raise WorkloadError(verb, f"a permission verb, one of {', '.join(PERMISSION_VERBS)} "
                                      "(anything else: iam_statements)")
        what, pattern = PERMISSION_VERBS[verb]
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
            raise WorkloadError(resources, f"{verb}: a non-empty list of strings, each {what}")
        for resource in resources:
            if "*" in resource or not re.match(pattern, resource):
                raise WorkloadError(resource, f"{verb}: {what}, without wildcards")
        checked[verb] = tuple(resources)
    return MappingProxyType(checked)


@dataclasses.dataclass(frozen=True)
class Statement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]


def check_statements(value: Any) -> tuple[Statement, ...]:
    """`[{ actions = [...], resources = [...] }]`: explicit Allow statements, no wildcard actions, no
    Resource "*" for actions that support resource-level permissions."""
    if not isinstance(value, list):
        raise WorkloadError(value, "a list of { actions = [...], resources = [...] } tables")
    statements = []
    for statement in value:
        if not isinstance(statement, dict) or set(statement) != {"actions", "resources"}:
            raise WorkloadError(statement, "a table with exactly actions = [...] and resources = [...]")
        actions, resources = statement["actions"], statement["resources"]
        for key, items in (("actions", actions), ("resources", resources)):
            if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
                raise WorkloadError(items, f"{key}: a non-empty list of strings")
        for action in actions:
            if "*" in action:
                raise WorkloadError(action, "an action without wildcards (name each action)")
            if not re.match(_ACTION, action):
                raise WorkloadError(action, "an IAM action such as textract:AnalyzeDocument")
        for resource in resources:
            if resource == "*":
                scoped = [a for a in actions if a not in NO_RESOURCE_LEVEL_ACTIONS]
                if scoped:
                    raise WorkloadError(resource, f"resource ARNs: {', '.join(scoped)} support "
                                                  "resource-level permissions, so Resource \"*\" is refused")
            elif not resource.startswith("arn:"):
                raise WorkloadError(resource, "an ARN (or \"*\" only for actions without "
                                              "resource-level permissions)")
        statements.append(Statement(tuple(actions), tuple(resources)))
    return tuple(statements)


# --- per job type ------------------------------------------------------------------------------------

def check_handlers(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WorkloadError(value, "a list of Python module names")
    for module in value:
        if not re.match(_MODULE, module):
            raise WorkloadError(module, f"a Python module name matching {_MODULE}")
    return tuple(value)
