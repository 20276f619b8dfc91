"""Configuration: merging, derived values, and one test_fails_... per invalid case.

Each invalid case writes a real environment directory (the shipped defaults.toml plus a broken
dev.toml) and asserts the one-line message names the file, the field, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from jobfleet_config.config import (
    ENVIRONMENTS_DIR,
    ConfigError,
    describe_fields,
    known_environments,
    load_all,
    load_environment,
)


def _env_dir(tmp_path: Path, dev_toml: str, defaults_edit: tuple[str, str] | None = None) -> Path:
    defaults = (ENVIRONMENTS_DIR / "defaults.toml").read_text()
    if defaults_edit:
        assert defaults_edit[0] in defaults
        defaults = defaults.replace(*defaults_edit)
    (tmp_path / "defaults.toml").write_text(defaults)
    (tmp_path / "dev.toml").write_text(textwrap.dedent(dev_toml))
    return tmp_path


def _error(tmp_path: Path, dev_toml: str, defaults_edit: tuple[str, str] | None = None) -> ConfigError:
    directory = _env_dir(tmp_path, dev_toml, defaults_edit)
    with pytest.raises(ConfigError) as info:
        load_environment("dev", directory)
    message = str(info.value)
    assert "\n" not in message
    return info.value


def _assert_names(error: ConfigError, file: str, field: str, value: str, allowed: str) -> None:
    message = str(error)
    assert message.startswith(file) or f"/{file}:" in message.split(" ")[0], message
    assert f"{field} = " in message, message
    assert value in message, message
    assert allowed in message, message


# --- valid configuration -------------------------------------------------------------------

def test_default_environments_are_dev_staging_prod():
    assert known_environments() == ["dev", "prod", "staging"]


def test_every_shipped_environment_validates():
    configs = load_all()
    assert [c.name for c in configs] == ["dev", "prod", "staging"]


def test_config_is_frozen():
    config = load_environment("dev")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tiers[0].max_tasks = 99  # type: ignore[misc]


def test_env_file_overrides_defaults_and_tiers_merge_by_name():
    dev, prod = load_environment("dev"), load_environment("prod")
    assert dev.network.nat_gateways == 1 and prod.network.nat_gateways == 2
    assert dev.tier("critical").max_tasks == 3
    # Fields the env file does not name keep their defaults.
    assert dev.tier("critical").latency_objective_seconds == 60
    assert [t.name for t in dev.tiers] == ["critical", "standard", "batch"]


def test_default_tiers_and_job_types():
    config = load_environment("staging")
    assert {t.name: t.runtime for t in config.tiers} == {
        "critical": "service", "standard": "service", "batch": "batch"}
    assert config.tier("critical").min_tasks >= 1
    assert config.tier("standard").min_tasks == 0
    assert dict(config.job_types) == {"onboarding": "critical", "report": "standard",
                                      "analysis": "batch"}


def test_derived_values(tmp_path):
    directory = _env_dir(tmp_path, """
        [[tiers]]
        name = "critical"
        latency_objective_seconds = 60
        expected_job_seconds = 2
        concurrency = 1
        max_job_seconds = 300
    """)
    tier = load_environment("dev", directory).tier("critical")
    # The README's worked example: 60 s objective, 2 s jobs -> 30 messages per task.
    assert tier.backlog_per_task_target == 30
    assert tier.visibility_timeout_seconds == 360
    assert tier.dlq_retention_days > tier.queue_retention_days


def test_new_tier_can_be_added_by_an_environment(tmp_path):
    directory = _env_dir(tmp_path, """
        [[tiers]]
        name = "exports"
        runtime = "service"
        latency_objective_seconds = 120
        expected_job_seconds = 10
        max_job_seconds = 600
        min_tasks = 0
        max_tasks = 4
        [job_types]
        export = "exports"
    """)
    config = load_environment("dev", directory)
    assert config.tier("exports").backlog_per_task_target == 12
    assert config.job_types["export"] == "exports"


def test_configuration_reference_documents_every_field():
    for section, rows in describe_fields().items():
        for name, _kind, _default, doc in rows:
            assert doc, f"{section}.{name} has no description"


# --- invalid configuration: one test per case ------------------------------------------------

def test_fails_on_wrong_type(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        concurrency = "four"
    """)
    _assert_names(error, "dev.toml", "tiers[critical].concurrency", "'four'", "an integer")


def test_fails_on_out_of_range_stop_timeout(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        stop_timeout_seconds = 300
    """)
    _assert_names(error, "dev.toml", "tiers[critical].stop_timeout_seconds", "300", "from 2 to 120")


def test_fails_when_a_batch_tiers_attempts_exceed_what_batch_runs(tmp_path):
    """Batch runs a job at most 10 times; its attempts are max(max_receive_count, spot_retry_attempts)."""
    error = _error(tmp_path, """
        [[tiers]]
        name = "batch"
        max_receive_count = 11
    """)
    _assert_names(error, "dev.toml", "tiers[batch].max_receive_count", "11", "1..10 for a batch tier")


def test_batch_attempts_are_the_larger_of_transient_and_reclaim_attempts(tmp_path):
    config = load_environment("dev", _env_dir(tmp_path, """
        [[tiers]]
        name = "batch"
        max_receive_count = 7
    """))
    assert config.batch.spot_retry_attempts == 5
    assert config.batch_attempts(config.tier("batch")) == 7
    assert load_environment("dev").batch_attempts(load_environment("dev").tier("batch")) == 5


def test_fails_when_min_tasks_exceeds_max_tasks(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        min_tasks = 5
        max_tasks = 3
    """)
    _assert_names(error, "dev.toml", "tiers[critical].min_tasks", "5", "<= max_tasks (3)")


def test_fails_on_unknown_tier_in_job_map(tmp_path):
    error = _error(tmp_path, """
        [job_types]
        onboarding = "urgent"
    """)
    _assert_names(error, "dev.toml", "job_types.onboarding", "'urgent'",
                  "a known tier: critical, standard, batch")


def test_fails_on_duplicate_tier(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        max_tasks = 4
        [[tiers]]
        name = "critical"
        max_tasks = 5
    """)
    _assert_names(error, "dev.toml", "tiers[critical].name", "'critical'", "at most once per file")


def test_fails_when_visibility_timeout_would_exceed_sqs_limit(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "batch"
        max_job_seconds = 43200
    """)
    _assert_names(error, "dev.toml", "tiers[batch].max_job_seconds", "43200", "<= 43140")


def test_fails_when_expected_duration_exceeds_max_duration(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "standard"
        expected_job_seconds = 1000
        max_job_seconds = 900
    """)
    _assert_names(error, "dev.toml", "tiers[standard].expected_job_seconds", "1000",
                  "<= max_job_seconds (900)")


def test_fails_when_latency_objective_is_below_one_job(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "standard"
        latency_objective_seconds = 10
    """)
    _assert_names(error, "dev.toml", "tiers[standard].latency_objective_seconds", "10",
                  ">= expected_job_seconds (30)")


def test_fails_on_unknown_key(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        concurency = 8
    """)
    _assert_names(error, "dev.toml", "tiers[critical].concurency", "8", "unknown key; known:")


def test_fails_on_unknown_section(tmp_path):
    error = _error(tmp_path, """
        [netwrok]
        nat_gateways = 1
    """)
    _assert_names(error, "dev.toml", "netwrok", "nat_gateways", "unknown section")


def test_fails_on_missing_required_field(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "exports"
        latency_objective_seconds = 60
        expected_job_seconds = 5
        max_job_seconds = 300
        max_tasks = 2
    """)
    _assert_names(error, "dev.toml", "tiers[exports].runtime", "(missing)", "required")


def test_fails_on_bad_account(tmp_path):
    error = _error(tmp_path, """
        [app]
        account = "12345"
    """)
    _assert_names(error, "dev.toml", "app.account", "'12345'", r"^\d{12}$")


def test_fails_on_bad_region(tmp_path):
    error = _error(tmp_path, """
        [app]
        region = "europe"
    """)
    _assert_names(error, "dev.toml", "app.region", "'europe'", "matching")


def test_fails_when_dlq_retention_not_longer_than_queue_retention(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        queue_retention_days = 14
        dlq_retention_days = 14
    """)
    _assert_names(error, "dev.toml", "tiers[critical].dlq_retention_days", "14",
                  "> queue_retention_days (14)")


def test_fails_when_imported_vpc_has_no_account_and_region(tmp_path):
    error = _error(tmp_path, """
        [network]
        vpc_id = "vpc-0123456789abcdef0"
    """)
    _assert_names(error, "dev.toml", "network.vpc_id", "vpc-0123456789abcdef0",
                  "needs app.account and app.region")


def test_fails_on_log_retention_cloudwatch_does_not_offer(tmp_path):
    error = _error(tmp_path, """
        [app]
        log_retention_days = 45
    """)
    _assert_names(error, "dev.toml", "app.log_retention_days", "45", "one of 1, 3, 5, 7, 14, 30")


def test_fails_on_redrive_reserved_concurrency_above_one(tmp_path):
    error = _error(tmp_path, """
        [redrive]
        reserved_concurrency = 2
    """)
    _assert_names(error, "dev.toml", "redrive.reserved_concurrency", "2", "from 0 to 1")


def test_fails_on_log_retention_below_a_year_without_a_waiver(tmp_path):
    error = _error(tmp_path, """
        [app]
        log_retention_days = 30
    """)
    _assert_names(error, "dev.toml", "app.log_retention_days", "30",
                  'Control Tower\'s CT.CLOUDWATCH.PR.2, or a waiver with its reason in [guard] waivers')


def test_fails_on_cloudwatch_log_encryption_without_a_waiver(tmp_path):
    error = _error(tmp_path, """
        [app]
        log_encryption = "cloudwatch"
    """)
    _assert_names(error, "dev.toml", "app.log_encryption", "cloudwatch", "CT.CLOUDWATCH.PR.3")


def test_fails_on_plain_http_and_no_deletion_protection_without_waivers(tmp_path):
    error = _error(tmp_path, """
        [api]
        allow_plain_http = true
    """)
    _assert_names(error, "dev.toml", "api.allow_plain_http", "True", "CT.ELASTICLOADBALANCING.PR.1")
    error = _error(tmp_path, """
        [api]
        deletion_protection = false
    """)
    _assert_names(error, "dev.toml", "api.deletion_protection", "False", "CT.ELASTICLOADBALANCING.PR.5")


def test_fails_on_a_waiver_no_setting_needs(tmp_path):
    error = _error(tmp_path, """
        [guard]
        waivers."CT.CLOUDWATCH.PR.3" = "dev logs use CloudWatch's own encryption: nothing sensitive"
    """)
    _assert_names(error, "dev.toml", "guard.waivers.CT.CLOUDWATCH.PR.3", "nothing sensitive",
                  "no setting of this environment fails that control")


def test_fails_on_a_waiver_without_a_specific_reason(tmp_path):
    error = _error(tmp_path, """
        [app]
        log_encryption = "cloudwatch"
        [guard]
        waivers."CT.CLOUDWATCH.PR.3" = "dev"
    """)
    _assert_names(error, "dev.toml", "guard.waivers.CT.CLOUDWATCH.PR.3", "'dev'",
                  "a specific reason of at least 40 characters")


def test_fails_on_waiving_a_control_that_is_not_config_driven(tmp_path):
    error = _error(tmp_path, """
        [guard]
        waivers."CT.S3.PR.2" = "the access-log bucket is the log destination itself anyway"
    """)
    _assert_names(error, "dev.toml", "guard.waivers.CT.S3.PR.2", "the access-log bucket",
                  "a key from CT.CLOUDWATCH.PR.2, CT.CLOUDWATCH.PR.3")


def test_fails_on_unknown_log_encryption(tmp_path):
    error = _error(tmp_path, """
        [app]
        log_encryption = "aes"
    """)
    _assert_names(error, "dev.toml", "app.log_encryption", "'aes'", "one of kms, cloudwatch")


def test_fails_on_fargate_memory_not_valid_for_cpu(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "critical"
        cpu = 256
        memory_mib = 4096
    """)
    _assert_names(error, "dev.toml", "tiers[critical].memory_mib", "4096", "for cpu 256: one of 512")


def test_fails_when_nat_gateways_exceed_azs(tmp_path):
    error = _error(tmp_path, """
        [network]
        nat_gateways = 3
    """)
    _assert_names(error, "dev.toml", "network.nat_gateways", "3", "from 1 to network.max_azs (2)")


def test_fails_when_batch_tier_sets_task_counts(tmp_path):
    error = _error(tmp_path, """
        [[tiers]]
        name = "batch"
        max_tasks = 4
    """)
    _assert_names(error, "dev.toml", "tiers[batch].max_tasks", "4", "0 for a batch tier")


def test_fails_on_bad_alarm_email(tmp_path):
    error = _error(tmp_path, """
        [alarms]
        emails = ["ops-at-example.com"]
    """)
    _assert_names(error, "dev.toml", "alarms.emails", "ops-at-example.com", "each item matching")


def test_fails_on_scheduled_redrive_of_unknown_tier(tmp_path):
    error = _error(tmp_path, """
        [redrive]
        scheduled_tiers = ["urgent"]
    """)
    _assert_names(error, "dev.toml", "redrive.scheduled_tiers", "'urgent'", "a known tier")


def test_fails_when_scheduled_redrive_has_no_error_types(tmp_path):
    error = _error(tmp_path, """
        [redrive]
        scheduled_tiers = ["critical"]
    """)
    _assert_names(error, "dev.toml", "redrive.scheduled_error_types", "[]",
                  "at least one error type when redrive.scheduled_tiers is set")


def test_fails_on_toml_syntax_error(tmp_path):
    error = _error(tmp_path, """
        [app
        name = "x"
    """)
    _assert_names(error, "dev.toml", "(syntax)", "line", "valid TOML")


def test_fails_on_error_in_defaults_naming_defaults_file(tmp_path):
    error = _error(tmp_path, "", defaults_edit=("ttl_days = 30", "ttl_days = 0"))
    _assert_names(error, "defaults.toml", "status.ttl_days", "0", "from 1 to 3650")


def test_fails_on_unknown_environment_listing_known_ones():
    with pytest.raises(ConfigError) as info:
        load_environment("qa")
    assert "env = 'qa': one of dev, prod, staging" in str(info.value)


def test_fails_when_batch_payload_limit_exceeds_what_submitjob_takes(tmp_path):
    error = _error(tmp_path, """
        [batch]
        max_payload_bytes = 30720
    """)
    _assert_names(error, "dev.toml", "batch.max_payload_bytes", "30720", "from 1024 to 14336")


def test_fails_on_graviton_batch_instance_class(tmp_path):
    error = _error(tmp_path, """
        [batch]
        instance_classes = ["m6i", "m7g"]
    """)
    _assert_names(error, "dev.toml", "batch.instance_classes", "'m7g'", "x86-64 instance classes")


def test_fails_when_fargate_batch_tier_has_no_fargate_size(tmp_path):
    error = _error(tmp_path, """
        [batch]
        compute = "fargate-spot"

        [[tiers]]
        name = "batch"
        memory_mib = 2048
    """)
    _assert_names(error, "dev.toml", "tiers[batch].memory_mib", "2048", "cpu 2048: one of 4096 to")


# --- access control ------------------------------------------------------------------------

def test_fails_when_prod_would_synthesize_an_open_api(tmp_path):
    (tmp_path / "defaults.toml").write_text((ENVIRONMENTS_DIR / "defaults.toml").read_text())
    prod = (ENVIRONMENTS_DIR / "prod.toml").read_text()
    (tmp_path / "prod.toml").write_text(prod + '\n[auth]\nmode = "none"\n')
    with pytest.raises(ConfigError) as info:
        load_environment("prod", tmp_path)
    _assert_names(info.value, "prod.toml", "auth.mode", "'none'", "jwt in prod")
    # The same prod with a VPC-only ALB is not open.
    (tmp_path / "prod.toml").write_text(prod.replace("[api]\n", "[api]\ninternal = true\n")
                                        + '\n[auth]\nmode = "none"\n')
    assert load_environment("prod", tmp_path).api.internal


def test_dev_may_be_open(tmp_path):
    directory = _env_dir(tmp_path, '[auth]\nmode = "none"\n[[tiers]]\nname = "critical"\n')
    assert load_environment("dev", directory).api_is_open


def test_fails_when_an_external_issuer_has_no_audience(tmp_path):
    error = _error(tmp_path, '[auth]\nissuer = "https://login.example.com/"\n[[tiers]]\nname = "critical"\n')
    _assert_names(error, "defaults.toml", "auth.audience", "''", "required with auth.issuer")


def test_fails_on_an_unknown_auth_mode(tmp_path):
    error = _error(tmp_path, '[auth]\nmode = "basic"\n[[tiers]]\nname = "critical"\n')
    _assert_names(error, "dev.toml", "auth.mode", "'basic'", "jwt")


# --- capacity, VPC endpoints and API wake-up (issue 17) --------------------------------------

def test_fails_on_vpc_endpoints_with_imported_vpc(tmp_path):
    error = _error(tmp_path, """
        [app]
        account = "123456789012"
        region = "us-east-1"
        [network]
        vpc_id = "vpc-0123456789abcdef0"
        vpc_endpoints = true
    """)
    _assert_names(error, "dev.toml", "network.vpc_endpoints", "True",
                  "false with network.vpc_id")


def test_fails_on_negative_spot_interruption_rate(tmp_path):
    error = _error(tmp_path, """
        [capacity]
        spot_interruptions_per_hour = -0.1
    """)
    _assert_names(error, "dev.toml", "capacity.spot_interruptions_per_hour", "-0.1", "from 0 to 10")


def test_fails_on_wake_interval_out_of_range(tmp_path):
    error = _error(tmp_path, """
        [api]
        wake_interval_seconds = 0
    """)
    _assert_names(error, "dev.toml", "api.wake_interval_seconds", "0", "from 1 to 300")
