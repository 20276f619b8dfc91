"""Backlog-per-task scaling of one worker service, with a wake-up from zero tasks.

Why not the usual recipes (see docs/scaling.md for the worked example):
- Raw queue depth steps (aws-ecs-patterns' QueueProcessingFargateService) ignore how many tasks
  already work the queue: 100 messages mean "overloaded" for 1 task and "idle" for 50.
- Target tracking on *backlog per task* = visible messages / running tasks keeps every task at
  the number of waiting messages it can clear within the tier's latency objective
  (`TierConfig.backlog_per_task_target` = latency / expected job seconds x concurrency).
  The L2 `scaleToTrackMetric` refuses metric math, so the policy is a `CfnScalingPolicy` with
  `CustomizedMetricSpecification.Metrics`.
- No CPU policy next to it: two target-tracking policies scale out when either asks and in only
  when both agree, so an idle-CPU, I/O-bound worker would fight the queue policy.
- At zero tasks the ratio has no meaning (and Container Insights has no task to count), so
  target tracking alone never starts the first task. A metric-math alarm (messages visible while
  the service wants zero tasks) drives a step policy that sets the capacity to exactly 1; from
  there target tracking takes over.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobfleet_config.config import TierConfig
from jobfleet_config.naming import Naming
from stacks.constructs.cluster import CONTAINER_INSIGHTS, container_insights_metric

# Backlog per task. m2 < 1 happens while the first task starts: divide by 1 then, never by 0
# (a division by zero yields no data point, and target tracking treats missing data as "hold").
BACKLOG_PER_TASK_EXPRESSION = "m1 / IF(m2 >= 1, m2, 1)"
# Wake-up condition: work is waiting and the service wants no task at all. FILL covers a metric
# that has no data point in the minute (Container Insights publishes nothing for an empty service
# in some minutes; SQS resumes metrics of an idle queue after its first send).
WAKE_UP_EXPRESSION = "IF(FILL(visible, 0) > 0 AND FILL(desired, 0) < 1, 1, 0)"
# Scale out fast (a minute of backlog above target adds tasks), scale in slowly: a task that
# just finished a burst may be needed again, and every start costs an image pull.
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300


class BacklogScaling(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, naming: Naming,
                 tier: TierConfig, service: ecs.FargateService, cluster: ecs.ICluster,
                 queue: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        # Application Auto Scaling owns DesiredCount from here on; the service sets none, so
        # a deploy keeps whatever count the policies reached.
        self.target = appscaling.ScalableTarget(
            self, "Target",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{cluster.cluster_name}/{service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=tier.min_tasks,
            max_capacity=tier.max_tasks,
        )
        service_dimensions = [
            appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                name="ClusterName", value=cluster.cluster_name),
            appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                name="ServiceName", value=service.service_name),
        ]
        self.backlog_policy = appscaling.CfnScalingPolicy(
            self, "BacklogPerTask",
            policy_name=naming.resource_name(tier.name, "backlog-per-task"),
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.target.scalable_target_id,
            target_tracking_scaling_policy_configuration=(
                appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                    target_value=tier.backlog_per_task_target,
                    scale_out_cooldown=SCALE_OUT_COOLDOWN_SECONDS,
                    scale_in_cooldown=SCALE_IN_COOLDOWN_SECONDS,
                    customized_metric_specification=(
                        appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(metrics=[
                            _metric_query("m1", "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                          [appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                                              name="QueueName", value=queue.queue_name)]),
                            _metric_query("m2", CONTAINER_INSIGHTS, "RunningTaskCount",
                                          service_dimensions),
                            appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                                id="e1", expression=BACKLOG_PER_TASK_EXPRESSION,
                                label="Backlog per task", return_data=True),
                        ])),
                )),
        )

        self.wake_up_alarm: cloudwatch.Alarm | None = None
        if tier.min_tasks == 0:
            self.wake_up_alarm = self._add_wake_up(naming, tier, service, cluster, queue)

    def _add_wake_up(self, naming: Naming, tier: TierConfig,
                     service: ecs.FargateService, cluster: ecs.ICluster,
                     queue: sqs.IQueue) -> cloudwatch.Alarm:
        minute = cdk.Duration.minutes(1)
        action = appscaling.StepScalingAction(
            self, "WakeUpAction",
            scaling_target=self.target,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=minute,
        )
        # Bounds are relative to the alarm threshold (1): the alarm metric is 1 when it fires.
        action.add_adjustment(adjustment=1, lower_bound=0)
        desired = container_insights_metric("DesiredTaskCount", service, cluster,
                                            statistic="Maximum")
        visible = queue.metric_approximate_number_of_messages_visible(statistic="Maximum",
                                                                      period=minute)
        alarm = cloudwatch.Alarm(
            self, "WakeUpAlarm",
            alarm_name=naming.resource_name(tier.name, "wake-up"),
            alarm_description=(f"{tier.name}: messages are waiting while the worker service is "
                               "scaled to zero; starts one task (target tracking takes over)"),
            metric=cloudwatch.MathExpression(expression=WAKE_UP_EXPRESSION,
                                             using_metrics={"visible": visible, "desired": desired},
                                             label="Work waiting at zero tasks", period=minute),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.ApplicationScalingAction(action))
        return alarm


def _metric_query(query_id: str, namespace: str, metric_name: str, dimensions: list
                  ) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
    return appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
        id=query_id,
        return_data=False,
        metric_stat=appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
            stat="Average",
            metric=appscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                namespace=namespace, metric_name=metric_name, dimensions=dimensions),
        ),
    )
