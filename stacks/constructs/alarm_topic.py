"""The environment's alarm topic: KMS-encrypted, TLS-only, subscriptions from the config.

Every alarm of the environment goes through `AlarmTopic.alarm(...)`, which creates the alarm and
puts both its ALARM and its OK action on the topic, so a page is always followed by an all-clear.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.constructs.keys import deny_grants_except_for_aws_resources

Comparison = cloudwatch.ComparisonOperator
Missing = cloudwatch.TreatMissingData


class AlarmTopic(Construct):
    """SNS topic + customer-managed key that CloudWatch alarms can publish to.

    An alarm cannot publish to a topic encrypted with the AWS-managed `alias/aws/sns` key: its key
    policy cannot be changed to admit cloudwatch.amazonaws.com. Hence a customer-managed key, with
    rotation, whose policy lets CloudWatch (of this account only) generate data keys and decrypt.
    """

    def __init__(self, scope: Construct, construct_id: str, *, topic_name: str,
                 emails: Sequence[str], https_endpoints: Sequence[str],
                 removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.key = kms.Key(
            self, "Key",
            alias=f"alias/{topic_name}",
            description=f"{topic_name}: encrypts alarm notifications",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowCloudWatchAlarmsToPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],  # in a key policy, "*" means this key
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ))
        deny_grants_except_for_aws_resources(self.key)
        self.topic = sns.Topic(
            self, "Topic",
            topic_name=topic_name,
            display_name=topic_name,
            master_key=self.key,
            enforce_ssl=True,
        )
        # The TLS-only statement makes CDK write a topic policy, which replaces SNS's default one;
        # CloudWatch alarms of this account are admitted explicitly.
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowCloudWatchAlarms",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": stack.format_arn(
                    service="cloudwatch", resource="alarm", resource_name="*",
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)},
            },
        ))
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        for url in https_endpoints:
            self.topic.add_subscription(subscriptions.UrlSubscription(
                url, protocol=sns.SubscriptionProtocol.HTTPS))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

    def alarm(self, scope: Construct, construct_id: str, *, alarm_name: str,
              metric: cloudwatch.IMetric, threshold: float, comparison: cloudwatch.ComparisonOperator,
              evaluation_periods: int, missing: cloudwatch.TreatMissingData, description: str,
              datapoints_to_alarm: int | None = None) -> cloudwatch.Alarm:
        """An alarm with ALARM and OK actions on this topic."""
        alarm = cloudwatch.Alarm(
            scope, construct_id,
            alarm_name=alarm_name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm
