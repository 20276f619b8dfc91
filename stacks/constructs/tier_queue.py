"""One tier's work queue and its dead-letter queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobfleet_config.config import TierConfig
from stacks.checkov import skip_check
from stacks.nag import acknowledge_report


class TierQueue(Construct):
    """Queue + DLQ for one tier: encrypted, TLS-only, redrive wired both ways.

    The construct IDs "Queue" and "DeadLetterQueue" are frozen: renaming one replaces the queue
    and drops its messages.
    """

    def __init__(self, scope: Construct, construct_id: str, *, tier: TierConfig, queue_name: str,
                 removal_policy: cdk.RemovalPolicy, key: kms.IKey | None) -> None:
        super().__init__(scope, construct_id)
        encryption = {"encryption": sqs.QueueEncryption.KMS, "encryption_master_key": key,
                      "data_key_reuse": cdk.Duration.hours(1)} if key else {
                      "encryption": sqs.QueueEncryption.SQS_MANAGED}
        stack = cdk.Stack.of(self)
        # The DLQ may only be a redrive target of its own source queue. The source ARN is built
        # from the name: referencing the queue itself would make the two queues a cycle.
        source_arn = stack.format_arn(service="sqs", resource=queue_name)
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetterQueue",
            queue_name=f"{queue_name}-dlq",
            retention_period=cdk.Duration.days(tier.dlq_retention_days),
            enforce_ssl=True,
            removal_policy=removal_policy,
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE,
                source_queues=[sqs.Queue.from_queue_arn(self, "SourceQueueRef", source_arn)],
            ),
            **encryption,
        )
        acknowledge_report(self.dead_letter_queue, "SQSRedrivePolicy",
                           "This queue is the tier's dead-letter queue; its messages leave only "
                           "by an operator's redrive back to the tier queue, never to a further DLQ.")
        self.queue = sqs.Queue(
            self, "Queue",
            queue_name=queue_name,
            visibility_timeout=cdk.Duration.seconds(tier.visibility_timeout_seconds),
            retention_period=cdk.Duration.days(tier.queue_retention_days),
            receive_message_wait_time=cdk.Duration.seconds(20),
            enforce_ssl=True,
            removal_policy=removal_policy,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=tier.max_receive_count),
            **encryption,
        )
        if key is None:
            for queue in (self.queue, self.dead_letter_queue):
                skip_check(queue, "CKV_AWS_27", "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); "
                           "checkov's rule only recognizes KmsMasterKeyId")
