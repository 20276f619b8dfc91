"""The workload keys a team configures (handlers, image, environment, secrets, permissions, job types,
architecture, storage, results, events): accepted forms, warnings, and one test_fails_... per refusal.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from jobfleet_config.config import ENVIRONMENTS_DIR, ConfigError, load_environment, with_prebuilt_image
from jobfleet_config.workload import SecretRef, parse_image, parse_secret

DIGEST = "sha256:" + "ab" * 32
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/worker"


def _load(tmp_path: Path, dev_toml: str):
    (tmp_path / "defaults.toml").write_text((ENVIRONMENTS_DIR / "defaults.toml").read_text())
    (tmp_path / "dev.toml").write_text(textwrap.dedent(dev_toml))
    return load_environment("dev", tmp_path)


def _fails(tmp_path: Path, dev_toml: str, field: str, value: str, allowed: str,
           file: str = "dev.toml") -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, dev_toml)
    message = str(info.value)
    assert "\n" not in message and f"{file}: " in message, message
    assert f"{field} = " in message and value in message and allowed in message, message


TEAM_TIER = """
[[tiers]]
name = "standard"
handlers = ["team_jobs"]
image = "{image}"
architecture = "arm64"
ephemeral_storage_gib = 50
environment = {{ PARTNER_API_URL = "https://partner.example.com" }}
secrets = {{ PARTNER_API_KEY = "secretsmanager:team/partner:apiKey", DB_URL = "ssm:/team/db-url" }}
secrets_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
iam_statements = [{{ actions = ["textract:AnalyzeDocument"], resources = ["*"] }}]

[tiers.permissions]
"s3:read" = ["team-input/reports/"]
"sns:publish" = ["arn:aws:sns:eu-west-1:123456789012:done"]

[job_types]
"invoice.render" = {{ tier = "standard", timeout_seconds = 120, isolation = "process", breaker_failures = 3 }}
"""


def test_a_team_tier_validates_into_typed_values(tmp_path):
    config = _load(tmp_path, TEAM_TIER.format(image=f"{ECR}@{DIGEST}"))
    tier = config.tier("standard")
    assert tier.handler_modules == ("team_jobs",) and tier.architecture == "arm64"
    assert dict(tier.environment) == {"PARTNER_API_URL": "https://partner.example.com"}
    assert tier.secrets["PARTNER_API_KEY"] == SecretRef("secretsmanager", name="team/partner",
                                                        json_key="apiKey")
    assert tier.secrets["DB_URL"] == SecretRef("ssm", name="/team/db-url")
    assert tier.permissions["s3:read"] == ("team-input/reports/",)
    assert tier.image_spec.ecr_account == "123456789012" and tier.image_spec.digest == DIGEST
    job = config.job_type_settings["invoice.render"]
    assert (job.tier, job.timeout_seconds, job.isolation, job.breaker_failures) == (
        "standard", 120, "process", 3)
    assert config.job_types["invoice.render"] == "standard" and config.job_types["report"] == "standard"
    # Pinned image, standard names its handlers: only the tiers still on the examples are warned about.
    assert len(config.warnings) == 1 and "tiers[critical,batch].handlers = []" in config.warnings[0]


def test_a_mutable_tag_is_accepted_with_a_warning(tmp_path):
    config = _load(tmp_path, TEAM_TIER.format(image=f"{ECR}:latest"))
    assert any("tiers[standard].image" in w and "mutable tag 'latest'" in w and "sha256" in w
               for w in config.warnings), config.warnings


def test_shipped_environments_warn_that_they_run_the_examples():
    for env in ("dev", "staging", "prod"):
        (warning,) = load_environment(env).warnings
        assert warning.startswith(f"warning: cdk_app/environments/{env}.toml: ") or f"{env}.toml" in warning
        assert "example handlers (worker.examples)" in warning


@pytest.mark.parametrize(("value", "expected"), [
    ("secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/key-AbCdEf",
     SecretRef("secretsmanager", arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/key-AbCdEf")),
    ("secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/key-AbCdEf:token",
     SecretRef("secretsmanager", arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/key-AbCdEf",
               json_key="token")),
    ("secretsmanager:plain", SecretRef("secretsmanager", name="plain")),
    ("ssm:team-param", SecretRef("ssm", name="team-param")),
])
def test_secret_forms(value, expected):
    assert parse_secret(value) == expected


def test_image_forms():
    assert parse_image("").directory == "" and not parse_image("").prebuilt
    assert parse_image("worker_image").directory == "worker_image"
    public = parse_image("public.ecr.aws/team/worker:1.4")
    assert public.prebuilt and public.tag == "1.4" and not public.ecr_account and not public.pinned


def test_a_prebuilt_worker_image_from_ci_replaces_only_the_default_image(tmp_path):
    config = with_prebuilt_image(_load(tmp_path, TEAM_TIER.format(image="worker_image")), f"{ECR}@{DIGEST}")
    assert config.worker_image == f"{ECR}@{DIGEST}"
    assert config.tier("standard").image == "worker_image"  # an explicit image stays
    tagged = with_prebuilt_image(load_environment("dev"), f"{ECR}:v7")
    assert tagged.warnings[-1] == f"warning: -c image: image = '{ECR}:v7': mutable tag 'v7': a redeploy " \
                                  "may run a different image; pin <registry>/<repository>@sha256:<digest>"


def test_fails_on_a_prebuilt_image_context_without_tag_or_digest():
    with pytest.raises(ConfigError, match=r"^-c image: image = '.*/team/worker': an image reference with"):
        with_prebuilt_image(load_environment("dev"), ECR)


def test_every_container_variable_of_the_contract_is_reserved():
    from jobfleet_config.workload import RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES
    from jobfleet_contract import environment as names

    defined = {value for name, value in vars(names).items()
               if name.isupper() and isinstance(value, str) and re.fullmatch(r"[A-Z_][A-Z0-9_]*", value)}
    assert {n for n in defined if not n.startswith(RESERVED_ENV_PREFIXES)} <= RESERVED_ENV_NAMES


def _tier(body: str) -> str:
    return f'[[tiers]]\nname = "standard"\n{textwrap.dedent(body)}'


def test_fails_on_a_handler_that_is_not_a_module_name(tmp_path):
    _fails(tmp_path, _tier('handlers = ["team-jobs"]'), "tiers[standard].handlers", "'team-jobs'",
           "a Python module name")


def test_fails_on_an_image_reference_without_tag_or_digest(tmp_path):
    _fails(tmp_path, _tier(f'image = "{ECR}"'), "tiers[standard].image", ECR, "a digest is recommended")


def test_fails_on_an_image_directory_without_a_dockerfile(tmp_path):
    _fails(tmp_path, _tier('image = "docs"'), "tiers[standard].image", "'docs'", "holding a Dockerfile")


def test_fails_on_an_api_image_outside_the_repository(tmp_path):
    _fails(tmp_path, '[api]\nimage = "../elsewhere"', "api.image", "'../elsewhere'",
           "relative to the repository root")


def test_fails_on_an_environment_name_jobfleet_sets(tmp_path):
    _fails(tmp_path, _tier('environment = { QUEUE_URL = "https://x" }'), "tiers[standard].environment",
           "'QUEUE_URL'", "a name JobFleet does not set itself")


def test_fails_on_an_aws_prefixed_environment_name(tmp_path):
    _fails(tmp_path, _tier('environment = { AWS_REGION = "eu-west-1" }'), "tiers[standard].environment",
           "'AWS_REGION'", "AWS_, ECS_, JOBFLEET_")


def test_fails_on_a_non_string_environment_value(tmp_path):
    _fails(tmp_path, _tier("environment = { RETRIES = 3 }"), "tiers[standard].environment",
           "{'RETRIES': 3}", 'NAME = "value"')


def test_fails_on_a_secret_with_an_unknown_source(tmp_path):
    _fails(tmp_path, _tier('secrets = { API_KEY = "vault:team/key" }'), "tiers[standard].secrets",
           "'vault:team/key'", '"secretsmanager:<name-or-arn>[:json-key]" or "ssm:<parameter-name>"')


def test_fails_on_a_secret_also_set_as_plain_environment(tmp_path):
    _fails(tmp_path, _tier('environment = { API_KEY = "x" }\nsecrets = { API_KEY = "ssm:/k" }'),
           "tiers[standard].secrets", "'API_KEY'", "not also set in environment")


def test_fails_on_a_kms_key_without_a_secrets_manager_secret(tmp_path):
    body = ('secrets = { K = "ssm:/k" }\nsecrets_kms_key_arn = '
            '"arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"')
    _fails(tmp_path, _tier(body), "tiers[standard].secrets_kms_key_arn", "arn:aws:kms",
           "unless secrets names a secretsmanager: secret")


def test_fails_on_an_unknown_permission_verb(tmp_path):
    _fails(tmp_path, _tier('permissions = { "s3:delete" = ["bucket-a"] }'), "tiers[standard].permissions",
           "'s3:delete'", "one of s3:read, s3:write")


def test_fails_on_a_wildcard_in_a_permission_resource(tmp_path):
    _fails(tmp_path, _tier('permissions = { "s3:read" = ["team-input/*"] }'), "tiers[standard].permissions",
           "'team-input/*'", "without wildcards")


def test_fails_on_a_wildcard_action(tmp_path):
    body = 'iam_statements = [{ actions = ["s3:*"], resources = ["arn:aws:s3:::team-input/*"] }]'
    _fails(tmp_path, _tier(body), "tiers[standard].iam_statements", "'s3:*'", "without wildcards")


def test_fails_on_resource_star_for_an_action_with_resource_level_permissions(tmp_path):
    body = 'iam_statements = [{ actions = ["s3:GetObject", "textract:AnalyzeDocument"], resources = ["*"] }]'
    _fails(tmp_path, _tier(body), "tiers[standard].iam_statements", "'*'",
           's3:GetObject support resource-level permissions, so Resource "*" is refused')


def test_fails_on_a_statement_with_other_keys(tmp_path):
    body = 'iam_statements = [{ actions = ["sns:Publish"], resources = ["*"], effect = "Deny" }]'
    _fails(tmp_path, _tier(body), "tiers[standard].iam_statements", "'effect': 'Deny'",
           "exactly actions = [...] and resources = [...]")


def test_fails_on_an_unknown_architecture(tmp_path):
    _fails(tmp_path, _tier('architecture = "arm"'), "tiers[standard].architecture", "'arm'",
           "one of x86_64, arm64")


def test_fails_on_ephemeral_storage_above_fargate_s_limit(tmp_path):
    _fails(tmp_path, _tier("ephemeral_storage_gib = 201"), "tiers[standard].ephemeral_storage_gib", "201",
           "from 20 to 200")


def test_fails_on_ephemeral_storage_for_an_ec2_batch_tier(tmp_path):
    body = '[[tiers]]\nname = "batch"\nephemeral_storage_gib = 100'
    _fails(tmp_path, body, "tiers[batch].ephemeral_storage_gib", "100", "only Fargate sizes task storage")


def test_fails_on_an_x86_instance_class_for_an_arm64_batch_tier(tmp_path):
    body = '[[tiers]]\nname = "batch"\narchitecture = "arm64"'
    # The instance classes come from defaults.toml, so that is the file named.
    _fails(tmp_path, body, "batch.instance_classes", "'m6i'", "Graviton instance classes",
           file="defaults.toml")


def test_fails_on_a_job_type_timeout_above_its_tier_maximum(tmp_path):
    body = '[job_types]\nreport = { tier = "standard", timeout_seconds = 901 }'
    _fails(tmp_path, body, "job_types.report.timeout_seconds", "901",
           "<= tiers[standard].max_job_seconds (900)")


def test_fails_on_an_unknown_job_type_isolation(tmp_path):
    body = '[job_types]\nreport = { tier = "standard", isolation = "container" }'
    _fails(tmp_path, body, "job_types.report.isolation", "'container'", "one of thread, process")


def test_fails_on_process_isolation_for_a_batch_tier_job_type(tmp_path):
    body = '[job_types]\nanalysis = { tier = "batch", isolation = "process" }'
    _fails(tmp_path, body, "job_types.analysis.isolation", "'process'",
           "'thread' for a job type of batch tier 'batch'")


def test_fails_on_a_job_type_table_naming_an_unknown_tier(tmp_path):
    _fails(tmp_path, '[job_types]\nreport = { tier = "gpu" }', "job_types.report.tier", "'gpu'",
           "a known tier: critical, standard, batch")


def test_fails_on_a_results_expiry_of_zero_days(tmp_path):
    _fails(tmp_path, "[results]\nexpiry_days = 0", "results.expiry_days", "0", "from 1 to 3650")


def test_fails_on_an_event_bus_name_with_a_slash(tmp_path):
    _fails(tmp_path, '[events]\nbus_name = "team/bus"', "events.bus_name", "'team/bus'", "matching")
