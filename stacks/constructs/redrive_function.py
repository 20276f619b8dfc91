"""The DLQ-redrive Lambda (lambda/redrive/): function, least-privilege role, optional schedules.

Packaging (stacks/lambda_asset.py): the asset holds two packages side by side, `redrive`
(lambda/redrive) and `jobfleet_contract` (the code the worker ships too), copied by a local bundler
(no Docker), so the handler is `redrive.handler.handler`. boto3 comes with the runtime;
aws-lambda-powertools comes from the public Powertools layer, version-pinned to the same release
as lambda/redrive/requirements.txt through Powertools' public SSM parameter (resolved by
CloudFormation in the deploy region, so the ARN is always the one published for that region and
partition).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from jobfleet_config.config import RedriveConfig
from jobfleet_config.naming import Naming
from jobfleet_contract.environment import redrive_environment
from stacks.checkov import skip_check
from stacks.constructs.alarm_topic import AlarmTopic, Comparison, Missing
from stacks.constructs.tier_queue import TierQueue
from stacks.guard import suppress
from stacks.lambda_asset import LAMBDA_DIR, asset_code, asset_packages
from stacks.logs import LogSettings, project_log_group
from stacks.nag import acknowledge, acknowledge_report

REQUIREMENTS = LAMBDA_DIR / "redrive" / "requirements.txt"
# package name in the asset -> its source directory (only its *.py files are copied)
ASSET_PACKAGES = asset_packages("redrive")
HANDLER = "redrive.handler.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_13


def powertools_version(requirements: Path = REQUIREMENTS) -> str:
    """The aws-lambda-powertools version pinned in the function's requirements.txt."""
    match = re.search(r"^aws-lambda-powertools(?:\[[^\]]*\])?==([0-9][0-9A-Za-z.]*)\s*$",
                      requirements.read_text(), re.MULTILINE)
    if not match:
        raise ValueError(f"{requirements}: aws-lambda-powertools must be pinned with ==")
    return match.group(1)


def powertools_layer_parameter(version: str, runtime: lambda_.Runtime = RUNTIME) -> str:
    """Powertools' public SSM parameter holding the regional layer ARN of one release."""
    return f"/aws/service/powertools/python/x86_64/{runtime.name}/{version}"


class RedriveFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, naming: Naming,
                 redrive: RedriveConfig, status_ttl_days: int, logs: LogSettings,
                 tier_queues: dict[str, TierQueue], status_table: dynamodb.ITableV2,
                 key: kms.IKey | None, topic: AlarmTopic) -> None:
        super().__init__(scope, construct_id)
        function_name = naming.resource_name("redrive")
        self.log_group = project_log_group(self, "Logs", settings=logs,
                                           log_group_name=f"/aws/lambda/{function_name}")
        # Own role, no AWSLambdaBasicExecutionRole: logs only to this function's log group.
        self.role = iam.Role(
            self, "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: move messages from the tier DLQs back to their queues",
        )
        policy = iam.Policy(self, "Access", statements=self._statements(
            tier_queues, status_table, key))
        policy.attach_to_role(self.role)

        layer_arn = ssm.StringParameter.value_for_string_parameter(
            self, powertools_layer_parameter(powertools_version()))
        self.powertools_layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", layer_arn)

        tier_urls = {name: {"queueUrl": tq.queue.queue_url, "dlqUrl": tq.dead_letter_queue.queue_url}
                     for name, tq in tier_queues.items()}
        self.function = lambda_.Function(
            self, "Function",
            function_name=function_name,
            description="JobFleet DLQ redrive: native move task, or filtered / dry-run / rate-limited",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=asset_code(ASSET_PACKAGES),
            handler=HANDLER,
            layers=[self.powertools_layer],
            timeout=cdk.Duration.seconds(redrive.timeout_seconds),
            memory_size=256,
            # One invocation at a time: two redrives of one DLQ must never interleave (a second
            # one would receive the messages the first made invisible and count them twice).
            # Configurable: accounts whose concurrency quota is 10 cannot reserve any.
            reserved_concurrent_executions=redrive.reserved_concurrency or None,
            # Async invocations (the schedule) are not retried: a failed redrive leaves messages
            # in the DLQ, and the next hour's run or the operator picks them up.
            retry_attempts=0,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=redrive_environment(
                tier_queues=tier_urls, max_redrives=redrive.max_redrives,
                status_table=status_table.table_name, status_ttl_days=status_ttl_days,
                to_json=cdk.Stack.of(self).to_json_string,
            ),
        )
        # Lambda's tracing support adds xray:PutTraceSegments/PutTelemetryRecords on "*" to the
        # role's default policy; that policy holds nothing else (queue access is in "Access").
        default_policy = self.role.node.try_find_child("DefaultPolicy")
        # The function must not be created before its policies (a first invocation would be
        # denied). Lambda also makes it depend on the role, which its Role GetAtt already
        # enforces (cfn-lint W3005); DependsOn is set to exactly the two policies.
        stack = cdk.Stack.of(self)
        policies = [policy, *([default_policy] if default_policy is not None else [])]
        function_resource = cast(lambda_.CfnFunction, self.function.node.default_child)
        function_resource.add_override("DependsOn", [
            stack.get_logical_id(cast(cdk.CfnElement, p.node.default_child)) for p in policies])
        if default_policy is not None:
            acknowledge(default_policy, "IAM5[Resource::*]",
                        "X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
                        "permissions; this policy holds only the tracing statement Lambda adds.")
        acknowledge(self.function, "L1",
                    "Runtime pinned to python3.13 by the redrive function's convention (3.12 or "
                    "3.13); moving to python3.14 is a deliberate change with its own layer pin.")

        if not redrive.reserved_concurrency:
            skip_check(self.function, "CKV_AWS_115",
                       "redrive.reserved_concurrency = 0: the account's Lambda concurrency quota "
                       "leaves nothing to reserve; operators serialize redrives (docs/redrive.md).")
        skip_check(self.function, "CKV_AWS_116",
                   "Async (scheduled) invocations are not retried and a failed redrive leaves every "
                   "message in its tier DLQ; the Errors alarm pages. A Lambda DLQ would only keep "
                   "the {tier, filter} event.")
        outside_vpc = ("Calls only the SQS and DynamoDB public APIs under IAM; a VPC would add NAT or "
                       "endpoints and reach no private resource.")
        skip_check(self.function, "CKV_AWS_117", outside_vpc)
        suppress(self.function, "CT.LAMBDA.PR.3", outside_vpc)
        acknowledge_report(self.function, "LambdaInsideVPC", outside_vpc)
        acknowledge_report(self.function, "LambdaLatestVersion",
                           "Runtime pinned to python3.13 by the redrive function's convention; "
                           "moving to python3.14 is a deliberate change with its own layer pin.")
        for nag_rule in ("LambdaDLQ", "LambdaAsyncFailureDestination"):
            acknowledge_report(self.function, nag_rule,
                               "Only the hourly schedule invokes it asynchronously, without retries: "
                               "a failed run leaves every message in its DLQ and the Errors alarm "
                               "pages; a failure destination would only keep the {tier, filter} event.")
        skip_check(self.function, "CKV_AWS_173",
                   "Environment holds only queue URLs, the table name, a redrive count and logging "
                   "settings, no secrets; Lambda encrypts it at rest with its service key.")

        self.schedules: dict[str, events.Rule] = {}
        for tier_name in redrive.scheduled_tiers:
            rule = events.Rule(
                self, f"Schedule-{tier_name}",
                rule_name=naming.resource_name(tier_name, "redrive-hourly"),
                description=f"Hourly redrive of {tier_name} DLQ messages that failed with "
                            f"{', '.join(redrive.scheduled_error_types)}",
                schedule=events.Schedule.rate(cdk.Duration.hours(1)),
            )
            rule.add_target(targets.LambdaFunction(
                self.function,
                event=events.RuleTargetInput.from_object({
                    "tier": tier_name,
                    "filter": {"errorTypes": list(redrive.scheduled_error_types)},
                }),
                retry_attempts=0,
            ))
            self.schedules[tier_name] = rule

        # Errors: the handler raised (misconfiguration, an AWS error mid-move); operator mistakes
        # come back as {"error": ...} results and do not count. Throttles: a second redrive was
        # refused by the reserved concurrency of 1 (someone ran two at once, or the schedule
        # collided with an operator; without a reservation, the account's concurrency ran out).
        # Both only exist when the function is invoked, so no data
        # means nothing ran: not breaching.
        period = cdk.Duration.minutes(5)
        self.errors_alarm = topic.alarm(
            self, "ErrorsAlarm", alarm_name=naming.resource_name("redrive", "errors"),
            description="The DLQ-redrive function failed; its log group has the stack trace.",
            metric=self.function.metric_errors(statistic="Sum", period=period),
            threshold=1, comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )
        self.throttles_alarm = topic.alarm(
            self, "ThrottlesAlarm", alarm_name=naming.resource_name("redrive", "throttles"),
            description="A redrive was throttled: another one was running (reserved "
                        "concurrency 1) or the account's concurrency ran out; re-run it later.",
            metric=self.function.metric_throttles(statistic="Sum", period=period),
            threshold=1, comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )

    def _statements(self, tier_queues: dict[str, TierQueue], status_table: dynamodb.ITableV2,
                    key: kms.IKey | None) -> list[iam.PolicyStatement]:
        dlq_arns = [tq.dead_letter_queue.queue_arn for tq in tier_queues.values()]
        queue_arns = [tq.queue.queue_arn for tq in tier_queues.values()]
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            # Selective mode reads, deletes and re-hides DLQ messages; native mode's
            # StartMessageMoveTask needs receive/delete/get-attributes on the source (the DLQ)
            # besides the move-task actions themselves.
            iam.PolicyStatement(
                sid="DeadLetterQueues",
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                         "sqs:GetQueueAttributes", "sqs:StartMessageMoveTask",
                         "sqs:ListMessageMoveTasks", "sqs:CancelMessageMoveTask"],
                resources=dlq_arns,
            ),
            # Copies go back to the tier queue (native move: SendMessage on the destination);
            # GetQueueAttributes resolves the destination's ARN for the move task.
            iam.PolicyStatement(
                sid="TierQueues",
                actions=["sqs:SendMessage", "sqs:GetQueueAttributes"],
                resources=queue_arns,
            ),
            # UpdateItem marks jobs queued and writes the copy ledger; BatchGetItem reads the ledger.
            iam.PolicyStatement(
                sid="JobStatus",
                actions=["dynamodb:UpdateItem", "dynamodb:BatchGetItem"],
                resources=[status_table.table_arn],
            ),
        ]
        if key is not None:
            statements.append(iam.PolicyStatement(
                sid="QueueKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
            ))
        return statements

