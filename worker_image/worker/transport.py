"""Thin SQS wrapper: the only module that makes SQS calls. Batches deletes and visibility changes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from jobfleet_contract.environment import aws_region

log = logging.getLogger("worker.transport")

_SEND_KEYS = ("DataType", "StringValue", "BinaryValue")
_NO_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


class QueueNotFound(Exception):
    """QUEUE_URL names no queue: retrying cannot help."""


def _raise_if_no_queue(exc: ClientError, queue_url: str) -> None:
    if exc.response.get("Error", {}).get("Code") in _NO_QUEUE_CODES:
        raise QueueNotFound(f"QUEUE_URL={queue_url} does not exist") from None


@dataclass
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_timestamp_ms: int
    attributes: dict[str, dict] = field(default_factory=dict)  # message attributes, send-ready

    def int_attribute(self, name: str) -> int:
        try:
            return int(self.attributes[name]["StringValue"])
        except (KeyError, ValueError):
            return 0


def send_ready_attributes(attributes: dict[str, dict]) -> dict[str, dict]:
    # Received attributes carry list fields SQS rejects on send; keep only what SendMessage accepts.
    return {name: {k: v for k, v in value.items() if k in _SEND_KEYS} for name, value in attributes.items()}


def _chunks(items: list, size: int = 10) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sqs_client(read_timeout: int = 40):
    """boto3 client honouring AWS_REGION / AWS_ENDPOINT_URL; read timeout outlasts a 20 s long poll."""
    return boto3.client(
        "sqs",
        region_name=aws_region(os.environ),
        config=Config(
            read_timeout=read_timeout, connect_timeout=5, retries={"mode": "standard", "max_attempts": 3}
        ),
    )


class SqsTransport:
    def __init__(self, client, queue_url: str, dlq_url: str) -> None:
        self.client = client
        self.queue_url = queue_url
        self.dlq_url = dlq_url

    def visibility_timeout(self) -> int:
        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
            )
        except ClientError as exc:
            _raise_if_no_queue(exc, self.queue_url)
            raise
        return int(attrs["Attributes"]["VisibilityTimeout"])

    def receive(self, max_messages: int, wait_seconds: int) -> list[Message]:
        try:
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
            )
        except ClientError as exc:
            _raise_if_no_queue(exc, self.queue_url)
            raise
        return [
            Message(
                message_id=raw["MessageId"],
                receipt_handle=raw["ReceiptHandle"],
                body=raw.get("Body", ""),
                receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                sent_timestamp_ms=int(raw.get("Attributes", {}).get("SentTimestamp", 0)),
                attributes=send_ready_attributes(raw.get("MessageAttributes", {})),
            )
            for raw in response.get("Messages", [])
        ]

    def delete_batch(self, messages: list[Message]) -> list[Message]:
        """Delete in batches of 10; returns the messages worth retrying (SQS-side failures)."""
        retry: list[Message] = []
        for chunk in _chunks(messages):
            response = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                message = chunk[int(failure["Id"])]
                log.warning(
                    "delete failed",
                    extra={
                        "messageId": message.message_id,
                        "code": failure.get("Code"),
                        "senderFault": failure.get("SenderFault"),
                    },
                )
                if not failure.get("SenderFault"):
                    retry.append(message)
        return retry

    def change_visibility_batch(self, entries: list[tuple[Message, int]]) -> list[Message]:
        """Set visibility for many messages, batches of 10; returns the ones SQS refused."""
        failed: list[Message] = []
        for chunk in _chunks(entries):
            response = self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                    for i, (m, seconds) in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                message = chunk[int(failure["Id"])][0]
                log.warning(
                    "visibility change failed",
                    extra={"messageId": message.message_id, "code": failure.get("Code")},
                )
                failed.append(message)
        return failed

    def change_visibility(self, message: Message, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds
        )

    def send_to_dlq(self, body: str, attributes: dict[str, dict]) -> None:
        self.client.send_message(QueueUrl=self.dlq_url, MessageBody=body, MessageAttributes=attributes)

    def requeue_with_delay(self, message: Message, body: str, delay_seconds: int) -> None:
        """Send ``body`` to the queue again after ``delay_seconds``, with the message's attributes."""
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            DelaySeconds=delay_seconds,
            MessageAttributes=message.attributes,
        )
