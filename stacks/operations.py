"""Operations: the alarm topic, every alarm, the dashboard, and the DLQ-redrive function.

Wires constructs only. The compute and batch stacks are optional inputs (an environment without a
batch tier has no batch stack): their alarms and widgets are added when they are given.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from stacks.batch import BatchStack
from stacks.compute import ComputeStack
from stacks.constructs.alarm_topic import AlarmTopic
from stacks.constructs.api_alarms import ApiAlarms
from stacks.constructs.batch_alarms import BatchAlarms
from stacks.constructs.dashboard import OperationsDashboard
from stacks.constructs.redrive_function import RedriveFunction
from stacks.constructs.tier_alarms import TierAlarms
from stacks.logs import LogSettings
from stacks.retention import removal_policy
from stacks.stateful import StatefulStack


class OperationsStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 stateful: StatefulStack, compute: ComputeStack | None = None,
                 batch: BatchStack | None = None, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        naming = config.naming
        self.alarm_topic = AlarmTopic(
            self, "AlarmTopic", topic_name=config.resource_name("alarms"),
            emails=config.alarms.emails, https_endpoints=config.alarms.https_endpoints,
            removal_policy=removal_policy(config.app),
        )
        self.topic = self.alarm_topic.topic
        self.dashboard = OperationsDashboard(self, "Dashboard", name=config.resource_name(),
                                             thresholds=config.alarms)

        cluster = compute.cluster if compute is not None else None
        worker_services = compute.worker_services if compute is not None else {}
        self.tier_alarms: dict[str, TierAlarms] = {}
        tier_rows = []
        for tier in config.tiers:
            service = worker_services.get(tier.name) if tier.is_service else None
            self.tier_alarms[tier.name] = TierAlarms(
                self, f"Tier-{tier.name}", thresholds=config.alarms, naming=naming, tier=tier,
                tier_queue=stateful.tier_queues[tier.name], topic=self.alarm_topic,
                service=service, cluster=cluster)
            tier_rows.append((tier, stateful.tier_queues[tier.name], service))

        self.api_alarms: ApiAlarms | None = None
        if compute is not None:
            self.api_alarms = ApiAlarms(
                self, "Api", thresholds=config.alarms, naming=naming,
                load_balancer=compute.load_balancer,
                target_group=compute.api_target_group, topic=self.alarm_topic)

        # One set per batch tier: BatchStack.tiers maps each to its job queue and failure rule.
        self.batch_alarms: dict[str, BatchAlarms] = {}
        if batch is not None:
            for tier in config.batch_tiers:
                batch_tier = batch.tiers[tier.name]
                self.batch_alarms[tier.name] = BatchAlarms(
                    self, f"Batch-{tier.name}", naming=naming,
                    failed_jobs_threshold=config.alarms.batch_failed_jobs_threshold, tier=tier.name,
                    job_queue=batch_tier.job_queue, failure_rule=batch_tier.failure_rule,
                    topic=self.alarm_topic)

        self.redrive = RedriveFunction(
            self, "Redrive", naming=naming, redrive=config.redrive,
            status_ttl_days=config.status.ttl_days, logs=LogSettings.of(config),
            tier_queues=stateful.tier_queues,
            status_table=stateful.status_table, key=stateful.key, topic=self.alarm_topic)
        self.redrive_function = self.redrive.function

        # Widgets last, so the alarm status widget lists every alarm.
        self.dashboard.add_alarm_status(self.alarm_topic.alarms)
        for tier, tier_queue, service in tier_rows:
            self.dashboard.add_tier(tier, config.tier_job_types(tier), tier_queue, service, cluster)
        if compute is not None and self.api_alarms is not None:
            self.dashboard.add_api(self.api_alarms, compute.api_service, compute.cluster)
        for batch_alarms in self.batch_alarms.values():
            self.dashboard.add_batch(batch_alarms)
        self.dashboard.add_redrive(self.redrive_function)

        cdk.CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn)
        cdk.CfnOutput(self, "RedriveFunctionName", value=self.redrive_function.function_name)
        cdk.CfnOutput(self, "DashboardName", value=config.resource_name())
