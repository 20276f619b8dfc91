"""Final Batch failures of one job queue -> that tier's DLQ, with the envelope and the reason.

An EventBridge rule matches `Batch Job State Change` with status FAILED for the job queue (jobs
whose retries are exhausted, jobs that exited with a non-retried reason, jobs cancelled after
sitting RUNNABLE too long) and sends the tier's DLQ one message per failed job:

    {"envelope": "<the job envelope, exactly as the producer sent it>",
     "failure": {"source": "aws.batch", "errorType": "BatchJobFailed", "reason": ..., ...}}

EventBridge cannot set SQS message attributes, so unlike the worker's dead letters the reason is
in the body; see docs/batch.md. If EventBridge cannot deliver the transformed message, the raw
event goes to the same DLQ (the target's dead-letter config), so a failure is never dropped.

Cross-stack: the DLQ and the KMS key live in the Stateful stack. Their policies name this rule by
an ARN built from its known name, never by a reference to the rule, so Stateful never depends on
this stack. Construct IDs ("Rule") are frozen.
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobfleet_contract.batch import ENVELOPE_PARAMETER

ERROR_TYPE = "BatchJobFailed"
# Each value the DLQ message carries, by its path in the Batch Job State Change event.
INPUT_PATHS = {
    "envelope": f"$.detail.parameters.{ENVELOPE_PARAMETER}",
    "statusReason": "$.detail.statusReason",
    "jobId": "$.detail.jobId",
    "jobName": "$.detail.jobName",
    "jobQueue": "$.detail.jobQueue",
    "jobDefinition": "$.detail.jobDefinition",
    "exitCode": "$.detail.container.exitCode",
    "logStreamName": "$.detail.container.logStreamName",
    "attempts": "$.detail.attempts",
    "time": "$.time",
}
# Strings are quoted (EventBridge escapes them, so any envelope text stays valid JSON); `attempts`
# is Batch's array of attempt details (one entry per attempt: container exit code, reason, times).
INPUT_TEMPLATE = (
    '{"envelope": "<envelope>", "failure": {'
    f'"source": "aws.batch", "errorType": "{ERROR_TYPE}", "reason": "<statusReason>", '
    '"jobId": "<jobId>", "jobName": "<jobName>", "jobQueue": "<jobQueue>", '
    '"jobDefinition": "<jobDefinition>", "exitCode": "<exitCode>", '
    '"logStreamName": "<logStreamName>", "failedAt": "<time>", "attempts": <attempts>}}'
)
EVENTS_PRINCIPAL = "events.amazonaws.com"


class BatchFailureRoute(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, rule_name: str,
                 job_queue: batch.IJobQueue, dead_letter_queue: sqs.IQueue,
                 key: kms.IKey | None) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self, "Rule",
            rule_name=rule_name,
            description="Batch jobs that finally failed -> the tier's DLQ (envelope + reason)",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={"status": ["FAILED"], "jobQueue": [job_queue.job_queue_arn]},
            ),
        )
        cfn_rule = cast(events.CfnRule, self.rule.node.default_child)
        # Set on the L1: the L2 SqsQueue target would grant through a reference to this rule,
        # making the Stateful stack (the queue's) depend on this one.
        cfn_rule.targets = [events.CfnRule.TargetProperty(
            id="DeadLetterQueue",
            arn=dead_letter_queue.queue_arn,
            input_transformer=events.CfnRule.InputTransformerProperty(
                input_paths_map=INPUT_PATHS, input_template=INPUT_TEMPLATE),
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(
                arn=dead_letter_queue.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_event_age_in_seconds=86400, maximum_retry_attempts=185),
        )]

        # In the queue's (and key's) own stack: the rule by name, as that stack sees its ARN.
        queue_stack = cdk.Stack.of(dead_letter_queue)
        rule_arn = queue_stack.format_arn(service="events", resource="rule", resource_name=rule_name)
        dead_letter_queue.add_to_resource_policy(iam.PolicyStatement(
            sid=f"AllowFailedBatchJobsFrom{_sid(rule_name)}",
            principals=[iam.ServicePrincipal(EVENTS_PRINCIPAL)],
            actions=["sqs:SendMessage"],
            resources=[dead_letter_queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": rule_arn}},
        ))
        if key is not None:
            key_stack = cdk.Stack.of(key)
            key.add_to_resource_policy(iam.PolicyStatement(
                sid=f"AllowEventsToEncryptFor{_sid(rule_name)}",
                principals=[iam.ServicePrincipal(EVENTS_PRINCIPAL)],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"ArnEquals": {"aws:SourceArn": key_stack.format_arn(
                    service="events", resource="rule", resource_name=rule_name)}},
            ))


def _sid(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
