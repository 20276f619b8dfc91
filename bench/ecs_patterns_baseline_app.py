"""Baseline for bench/synth_speed.py: a bare aws-ecs-patterns app with the same resources.

Per environment (dev, staging, prod): a VPC, an ECS cluster, an ALB-fronted API service
(ApplicationLoadBalancedFargateService), one QueueProcessingFargateService per service tier with
its queue and DLQ, the batch queue and DLQ, a DynamoDB table, a Lambda and an SNS topic — no
config validation, no cdk-nag, no custom scaling, no alarms.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as patterns
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

ROOT = Path(__file__).resolve().parents[1]


def build(app: cdk.App, env_name: str) -> None:
    stage = cdk.Stage(app, env_name)
    stack = cdk.Stack(stage, "All")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2)
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    image = ecs.ContainerImage.from_asset(str(ROOT / "worker_image"))
    patterns.ApplicationLoadBalancedFargateService(
        stack,
        "Api",
        cluster=cluster,
        task_image_options=patterns.ApplicationLoadBalancedTaskImageOptions(image=image, container_port=8080),
    )
    for tier in ("critical", "standard"):
        dlq = sqs.Queue(stack, f"{tier}Dlq")
        queue = sqs.Queue(
            stack, f"{tier}Queue", dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5)
        )
        patterns.QueueProcessingFargateService(
            stack, f"{tier}Workers", cluster=cluster, image=image, queue=queue, max_scaling_capacity=10
        )
    sqs.Queue(
        stack,
        "batchQueue",
        dead_letter_queue=sqs.DeadLetterQueue(queue=sqs.Queue(stack, "batchDlq"), max_receive_count=3),
    )
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


if __name__ == "__main__":
    application = cdk.App(outdir=sys.argv[1])
    for name in ("dev", "staging", "prod"):
        build(application, name)
    application.synth()
