"""The feed of one batch tier: SQS tier queue -> submitter Lambda -> Batch SubmitJob, one job per message.

The function (lambda/batch_submit/) passes each message's body, the string Lambda's SQS event
documents, as the job parameter `envelope`, a string as SubmitJob documents it, and its redrive
generation as `generation`; the job runs
`python -m worker run-one --envelope Ref::envelope --generation Ref::generation`. Nothing rests on
how a pipe would render a JSON body into a string parameter (not documented). A failed SubmitJob is
a batch item failure: that message is retried after the visibility timeout and, after
`max_receive_count` receives, the queue's redrive policy moves it to the DLQ untouched.

The role may read that one queue (through the event source mapping), submit to that one job queue
with that one job definition, and write its own log group; nothing else. Construct IDs ("Logs",
"Role", "Function") are frozen.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobfleet_contract.environment import batch_feed_environment
from stacks.checkov import skip_check
from stacks.guard import suppress
from stacks.lambda_asset import asset_code, asset_packages
from stacks.logs import LogSettings, project_log_group
from stacks.nag import acknowledge, acknowledge_report

HANDLER = "batch_submit.handler.handler"
# package name in the asset -> its source directory: the handler reads its settings with jobfleet_contract
ASSET_PACKAGES = asset_packages("batch_submit")
RUNTIME = lambda_.Runtime.PYTHON_3_13
# Up to 10 messages per invocation; each is submitted and reported on its own.
BATCH_SIZE = 10
_OUTSIDE_VPC = ("Calls only the Batch SubmitJob public API under IAM (SQS polling is Lambda's event "
                "source mapping); a VPC would add NAT or endpoints and reach no private resource.")


class BatchFeed(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, function_name: str,
                 queue: sqs.IQueue, job_queue: batch.IJobQueue,
                 job_definition: batch.IJobDefinition, job_name: str,
                 logs: LogSettings) -> None:
        super().__init__(scope, construct_id)
        self.log_group = project_log_group(self, "Logs", settings=logs,
                                           log_group_name=f"/aws/lambda/{function_name}")
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"{function_name}: submit one Batch job per batch-tier message")
        statements = [
            iam.PolicyStatement(sid="SubmitBatchJob", actions=["batch:SubmitJob"],
                                resources=[job_queue.job_queue_arn, job_definition.job_definition_arn]),
            iam.PolicyStatement(sid="WriteLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self.log_group.log_group_arn]),
        ]
        # One policy (the role's default one): the event source mapping's queue grant lands there too.
        for statement in statements:
            self.role.add_to_policy(statement)
        self.function = lambda_.Function(
            self, "Function",
            function_name=function_name,
            description="JobFleet batch feed: one SQS message -> one AWS Batch job (envelope as a parameter)",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=asset_code(ASSET_PACKAGES),
            handler=HANDLER,
            timeout=cdk.Duration.seconds(60),
            memory_size=128,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=batch_feed_environment(job_queue=job_queue.job_queue_arn,
                                               job_definition=job_definition.job_definition_arn,
                                               job_name=job_name),
        )
        # The mapping's grant adds receive/delete/get-attributes on the queue and, for a queue
        # under the customer-managed key, kms:Decrypt on that key.
        self.function.add_event_source(sources.SqsEventSource(
            queue, batch_size=BATCH_SIZE, report_batch_item_failures=True))

        # Lambda's tracing support adds xray:PutTraceSegments/PutTelemetryRecords on "*" (they have
        # no resource-level permissions); every other statement of the policy names its resource.
        acknowledge(self.role.node.find_child("DefaultPolicy"), "IAM5[Resource::*]",
                    "X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
                    "permissions; the policy's other statements each name their one resource.")
        acknowledge_report(self.function, "LambdaEventSourceMappingDestination",
                           "False positive for an SQS source: Lambda supports no on-failure "
                           "destination there; failed messages go to the tier DLQ by the queue's "
                           "redrive policy.")
        acknowledge(self.function, "L1",
                    "Runtime pinned to python3.13 like the redrive function; moving to python3.14 "
                    "is a deliberate change tested with lambda/batch_submit.")
        skip_check(self.function, "CKV_AWS_115",
                   "Concurrency is bounded by the SQS event source (batch size, Lambda's pollers); "
                   "a reservation fails the deploy on accounts whose concurrency quota is 10.")
        skip_check(self.function, "CKV_AWS_116",
                   "Invoked only by its SQS event source: a failed message stays in the tier queue "
                   "and the queue's redrive policy moves it to the tier DLQ.")
        skip_check(self.function, "CKV_AWS_117", _OUTSIDE_VPC)
        skip_check(self.function, "CKV_AWS_173",
                   "Environment holds only the job queue and job definition ARNs and a job name, "
                   "no secrets; Lambda encrypts it at rest with its service key.")
        suppress(self.function, "CT.LAMBDA.PR.3", _OUTSIDE_VPC)
        acknowledge_report(self.function, "LambdaInsideVPC", _OUTSIDE_VPC)
        acknowledge_report(self.function, "LambdaLatestVersion",
                           "Runtime pinned to python3.13 like the redrive function; moving to "
                           "python3.14 is a deliberate change tested with lambda/batch_submit.")
        for rule in ("LambdaDLQ", "LambdaConcurrency"):
            acknowledge_report(self.function, rule,
                               "Invoked only by its SQS event source: failed messages stay in the tier "
                               "queue and its redrive policy dead-letters them; concurrency follows "
                               "the queue, and a reservation fails on accounts with a quota of 10.")
