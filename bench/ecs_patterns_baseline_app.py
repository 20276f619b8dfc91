"""Baseline for bench/synth_speed.py: a bare aws-ecs-patterns app with the same resources.

Per environment (dev, staging, prod), built the plain way with L2 constructs and aws-ecs-patterns
defaults: a VPC with flow logs, an ECS cluster, an ALB-fronted API service
(ApplicationLoadBalancedFargateService) with an access-log bucket, one QueueProcessingFargateService
per service tier with its queue and DLQ, the batch queue and DLQ, AWS Batch (Spot and on-demand
compute environments, job queue, job definition, an EventBridge Pipe and a failure rule), a
DynamoDB table, a KMS key, an SNS topic, the redrive Lambda, as many CloudWatch alarms as JobFleet
creates and a dashboard. What it leaves out is what JobFleet adds on top: typed config
validation, cdk-nag, hardened containers, metric-math scaling, least-privilege wiring.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as patterns
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

ROOT = Path(__file__).resolve().parents[1]
ALARMS_PER_ENVIRONMENT = 20


def build(app: cdk.App, env_name: str) -> None:
    stage = cdk.Stage(app, env_name)
    stack = cdk.Stack(stage, "All")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2)
    vpc.add_flow_log("FlowLog")
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    image = ecs.ContainerImage.from_asset(str(ROOT / "worker_image"))
    patterns.ApplicationLoadBalancedFargateService(
        stack,
        "Api",
        cluster=cluster,
        task_image_options=patterns.ApplicationLoadBalancedTaskImageOptions(image=image, container_port=8080),
    )
    s3.Bucket(stack, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True)
    kms.Key(stack, "Key", enable_key_rotation=True)
    queues = []
    for tier in ("critical", "standard"):
        dlq = sqs.Queue(stack, f"{tier}Dlq")
        queue = sqs.Queue(
            stack, f"{tier}Queue", dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5)
        )
        queues.append(queue)
        patterns.QueueProcessingFargateService(
            stack, f"{tier}Workers", cluster=cluster, image=image, queue=queue, max_scaling_capacity=10
        )
    batch_dlq = sqs.Queue(stack, "batchDlq")
    batch_queue = sqs.Queue(stack, "batchQueue", dead_letter_queue=sqs.DeadLetterQueue(
        queue=batch_dlq, max_receive_count=3))
    queues.append(batch_queue)

    spot = batch.ManagedEc2EcsComputeEnvironment(stack, "Spot", vpc=vpc, spot=True)
    on_demand = batch.ManagedEc2EcsComputeEnvironment(stack, "OnDemand", vpc=vpc)
    job_queue = batch.JobQueue(stack, "JobQueue", compute_environments=[
        batch.OrderedComputeEnvironment(compute_environment=spot, order=1),
        batch.OrderedComputeEnvironment(compute_environment=on_demand, order=2)])
    job_definition = batch.EcsJobDefinition(stack, "JobDefinition", container=batch.EcsEc2ContainerDefinition(
        stack, "JobContainer", image=image, cpu=2, memory=cdk.Size.mebibytes(8192)))
    pipe_role = iam.Role(stack, "PipeRole", assumed_by=iam.ServicePrincipal("pipes.amazonaws.com"))
    batch_queue.grant_consume_messages(pipe_role)
    pipes.CfnPipe(stack, "Feed", role_arn=pipe_role.role_arn, source=batch_queue.queue_arn,
                  target=job_queue.job_queue_arn,
                  target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                      batch_job_parameters=pipes.CfnPipe.PipeTargetBatchJobParametersProperty(
                          job_definition=job_definition.job_definition_arn, job_name="job")))
    events.Rule(stack, "Failed", event_pattern=events.EventPattern(
        source=["aws.batch"], detail={"status": ["FAILED"]}))

    dynamodb.TableV2(
        stack, "Jobs", partition_key=dynamodb.Attribute(name="jobId", type=dynamodb.AttributeType.STRING)
    )
    lambda_.Function(
        stack,
        "Redrive",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(ROOT / "lambda" / "redrive")),
    )
    sns.Topic(stack, "Alarms")
    dashboard = cloudwatch.Dashboard(stack, "Dashboard")
    for index in range(ALARMS_PER_ENVIRONMENT):
        metric = queues[index % len(queues)].metric_approximate_number_of_messages_visible()
        cloudwatch.Alarm(stack, f"Alarm{index}", metric=metric, threshold=1, evaluation_periods=1)
        dashboard.add_widgets(cloudwatch.GraphWidget(left=[metric]))


if __name__ == "__main__":
    application = cdk.App(outdir=sys.argv[1])
    for name in ("dev", "staging", "prod"):
        build(application, name)
    application.synth()
