"""Local mode's AWS side: moto as a server on 127.0.0.1, and in it the queues, DLQs and status table
the Stateful stack defines, with the names the CDK app gives them."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import boto3
from botocore.config import Config

from jobfleet_config.config import EnvironmentConfig
from jobfleet_contract.status import EXPIRES_AT, JOB_ID
from jobfleet_tools.local.processes import HOST, free_port

DEFAULT_REGION = "us-east-1"


class LocalAws:
    def __init__(self, config: EnvironmentConfig) -> None:
        self.config = config
        self.region = config.app.region or DEFAULT_REGION
        self.queue_urls: dict[str, str] = {}
        self.dlq_urls: dict[str, str] = {}
        self.table_name = config.resource_name("jobs")
        self.endpoint = ""
        self._moto: Any = None

    def client(self, service: Literal["sqs", "dynamodb", "batch", "iam"]) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"mode": "standard", "max_attempts": 3}))

    def status_table(self) -> Any:
        return boto3.resource("dynamodb", region_name=self.region, endpoint_url=self.endpoint,
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              ).Table(self.table_name)

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call otherwise
        port = free_port()
        self._moto = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
        self._moto.start()
        self.endpoint = f"http://{HOST}:{port}"

    def stop(self) -> bool:
        """Stops moto; False when it was not running."""
        if self._moto is None:
            return False
        self._moto.stop()
        return True

    def create_resources(self) -> None:
        """Queues, DLQs and the status table, as the Stateful stack defines them."""
        sqs = self.client("sqs")
        for tier in self.config.tiers:
            dlq_url = sqs.create_queue(
                QueueName=self.config.resource_name(tier.name) + "-dlq",
                Attributes={"MessageRetentionPeriod": str(tier.dlq_retention_days * 86400)},
            )["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            self.queue_urls[tier.name] = sqs.create_queue(
                QueueName=self.config.resource_name(tier.name),
                Attributes={
                    "VisibilityTimeout": str(tier.visibility_timeout_seconds),
                    "MessageRetentionPeriod": str(tier.queue_retention_days * 86400),
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                                 "maxReceiveCount": tier.max_receive_count}),
                },
            )["QueueUrl"]
            self.dlq_urls[tier.name] = dlq_url
        create_status_table(self.client("dynamodb"), self.table_name)


def create_status_table(dynamodb: Any, name: str) -> None:
    """The job-status table as the Stateful stack defines it (stacks/constructs/job_status_table.py):
    on demand, keyed by jobId, TTL on expiresAt. Local mode's, and the tests' (one definition, so a
    test table cannot drift from the real one)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": JOB_ID, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": JOB_ID, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT})
