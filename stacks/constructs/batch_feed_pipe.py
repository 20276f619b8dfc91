"""EventBridge Pipe feeding one batch tier: SQS queue -> Batch SubmitJob, one message per job.

The message body (the job envelope) becomes the job parameter `envelope`; the worker receives it
as `--envelope`. The pipe deletes the message once SubmitJob succeeds. A failed SubmitJob (an
envelope above Batch's 30 KiB request limit, a throttle) leaves the message in the queue: it is
retried after the visibility timeout and, after `max_receive_count` receives, the queue's redrive
policy moves it to the DLQ untouched.

The role may read that one queue and submit to that one job queue with that one job definition;
nothing else. Construct IDs ("Role", "Logs", "Pipe") are frozen.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app.config import EnvironmentConfig
from stacks.constructs.batch_job_definition import ENVELOPE_PARAMETER
from stacks.logs import project_log_group

# One SQS message per SubmitJob: a job's lifetime is independent of every other message's.
BATCH_SIZE = 1


class BatchFeedPipe(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, pipe_name: str, queue: sqs.IQueue,
                 key: kms.IKey | None, job_queue: batch.IJobQueue,
                 job_definition: batch.IJobDefinition, job_name: str,
                 config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal(
            "pipes.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}),
            description=f"{pipe_name}: read the batch queue, submit Batch jobs")
        statements = [
            iam.PolicyStatement(
                sid="ReadBatchQueue",
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                resources=[queue.queue_arn]),
            iam.PolicyStatement(
                sid="SubmitBatchJob",
                actions=["batch:SubmitJob"],
                resources=[job_queue.job_queue_arn, job_definition.job_definition_arn]),
        ]
        if key is not None:
            statements.append(iam.PolicyStatement(
                sid="DecryptBatchQueue", actions=["kms:Decrypt"], resources=[key.key_arn]))
        self.log_group = project_log_group(self, "Logs", config=config)
        statements.append(iam.PolicyStatement(
            sid="WritePipeLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn]))
        self.policy = iam.Policy(self, "Policy", statements=statements)
        self.policy.attach_to_role(self.role)

        self.pipe = pipes.CfnPipe(
            self, "Pipe",
            name=pipe_name,
            description="Batch tier: one SQS message -> one AWS Batch job",
            role_arn=self.role.role_arn,
            source=queue.queue_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                sqs_queue_parameters=pipes.CfnPipe.PipeSourceSqsQueueParametersProperty(
                    batch_size=BATCH_SIZE)),
            target=job_queue.job_queue_arn,
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                batch_job_parameters=pipes.CfnPipe.PipeTargetBatchJobParametersProperty(
                    job_definition=job_definition.job_definition_arn,
                    job_name=job_name,
                    parameters={ENVELOPE_PARAMETER: "$.body"})),
            log_configuration=pipes.CfnPipe.PipeLogConfigurationProperty(
                level="ERROR",
                cloudwatch_logs_log_destination=pipes.CfnPipe.CloudwatchLogsLogDestinationProperty(
                    log_group_arn=self.log_group.log_group_arn)),
            desired_state="RUNNING",
        )
        # The pipe checks its permissions on creation: the policy must exist first.
        self.pipe.node.add_dependency(self.policy)
