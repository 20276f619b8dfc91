"""Backlog-per-task scaling of one worker service, with a wake-up from zero tasks.

Why not the usual recipes (see docs/scaling.md for the worked example):
- Raw queue depth steps (aws-ecs-patterns' QueueProcessingFargateService) ignore how many tasks
  already work the queue: 100 messages mean "overloaded" for 1 task and "idle" for 50.
- Target tracking on *backlog per task* = visible messages / tasks keeps every task at
  the number of waiting messages it can clear within the tier's latency objective
  (`TierConfig.backlog_per_task_target` = latency / expected job seconds x concurrency).
  The L2 `scaleToTrackMetric` refuses metric math, so the policy is a `CfnScalingPolicy` with
  `CustomizedMetricSpecification.Metrics`. Tasks = MAX(running, desired): AWS's example divides
  by running tasks, which overshoots while new tasks start (see TASKS_EXPRESSION).
- No CPU policy next to it: two target-tracking policies scale out when either asks and in only
  when both agree, so an idle-CPU, I/O-bound worker would fight the queue policy.
- At zero tasks the ratio has no meaning (and Container Insights has no task to count), so
  target tracking alone never starts the first task. A metric-math alarm (messages visible while
  the service wants zero tasks) drives a step policy that sets the capacity to exactly 1; from
  there target tracking takes over.
- Target tracking only scales *out* (`DisableScaleIn`). Its own scale-in acts on the backlog of
  visible messages alone, so it counted a task busy with every message as idle, and after an idle
  spell its low alarm, still in ALARM and fed data points from before a wake-up, set a freshly
  woken service back to 0. Scale-in is two step policies instead, on alarms whose data cannot
  predate the capacity they remove:
  - "scale-in": work per task (visible + in flight, per task as above) below half the target for
    15 minutes, counted only while the service wants more than max(min_tasks, 1) tasks; removes
    25 % of the tasks (50 % far below target), at least one, never the last one.
  - "scale-to-zero" (min 0 only): for 15 minutes no visible and no in-flight message while the
    service wants exactly one task; removes that task. Minutes from before a wake-up wanted 0
    tasks, so they never count.
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

# Tasks the service has or is starting: MAX(running, desired). Dividing by running tasks alone
# overshoots: while new tasks start (a minute or more) running stays low, the ratio stays high and
# target tracking keeps adding tasks for the same backlog. The desired count already includes
# them; running exceeds it only while tasks picked for scale-in finish their jobs.
TASKS_EXPRESSION = "IF(m3 > m2, m3, m2)"
# Backlog per task. Below 1 task (while the first one is wanted) divide by 1, never by 0 (a
# division by zero yields no data point, and target tracking treats missing data as "hold").
BACKLOG_PER_TASK_EXPRESSION = "m1 / IF(tasks >= 1, tasks, 1)"
# Wake-up condition: work is waiting and the service wants no task at all. FILL covers a metric
# that has no data point in the minute (Container Insights publishes nothing for an empty service
# in some minutes; SQS resumes metrics of an idle queue after its first send).
WAKE_UP_EXPRESSION = "IF(FILL(visible, 0) > 0 AND FILL(desired, 0) < 1, 1, 0)"
# Scale out fast (a minute of backlog above target adds tasks), scale in slowly: a task that
# just finished a burst may be needed again, and every start costs an image pull.
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300
# Scale-in waits for as many low minutes as target tracking's own low alarm did.
SCALE_IN_MINUTES = 15
# Work per task as a fraction of the backlog-per-task target ("ratio"). Below half the target a
# step removes 25 % of the tasks, at or below a quarter 50 %: either way the remaining tasks stay under
# the target, so the scale-out policy is not provoked into adding them straight back.
SCALE_IN_BELOW_RATIO = 0.5
SCALE_IN_STEPS = ((-0.25, 0.0, -25), (None, -0.25, -50))  # (lower, upper) relative to the threshold, %
# Work per task, divided by the target; a minute the gate refuses (or without queue data: FILL -1)
# yields 1 = "at target", which never breaches. Tasks = MAX(running, desired), as for scale-out:
# both policies count the same tasks, so a step's "the rest stays under the target" holds in the
# scale-out metric's terms (and tasks that cannot start count as unneeded ones). The gate keeps
# desired >= 2 here, so the divisor is never 0.
SCALE_IN_EXPRESSION = (
    "IF(FILL(desired, 0) > {floor} AND FILL(visible, -1) >= 0 AND FILL(in_flight, -1) >= 0, "
    "(FILL(visible, 0) + FILL(in_flight, 0))"
    " / IF(FILL(running, 0) > FILL(desired, 0), FILL(running, 0), FILL(desired, 0))"
    " / {target}, 1)")
# The last task goes only when nothing is waiting or in flight while the service wants one task.
# A minute without queue data (FILL -1) is not "empty"; a minute at 0 desired tasks (before a
# wake-up) does not count, so stale minutes can never cancel a task that was just started.
SCALE_TO_ZERO_EXPRESSION = (
    "IF(FILL(visible, -1) == 0 AND FILL(in_flight, -1) == 0 AND FILL(desired, 0) == 1, 1, 0)")


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
                    # Scale-in is the step policies below (see the module docstring).
                    disable_scale_in=True,
                    customized_metric_specification=(
                        appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(metrics=[
                            _metric_query("m1", "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                          [appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                                              name="QueueName", value=queue.queue_name)]),
                            _metric_query("m2", CONTAINER_INSIGHTS, "RunningTaskCount",
                                          service_dimensions),
                            # The minute's highest desired count: a scale-out counts at once.
                            _metric_query("m3", CONTAINER_INSIGHTS, "DesiredTaskCount",
                                          service_dimensions, stat="Maximum"),
                            appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                                id="tasks", expression=TASKS_EXPRESSION,
                                label="Running or desired tasks", return_data=False),
                            appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                                id="e1", expression=BACKLOG_PER_TASK_EXPRESSION,
                                label="Backlog per task", return_data=True),
                        ])),
                )),
        )

        self.wake_up_alarm: cloudwatch.Alarm | None = None
        self.scale_to_zero_alarm: cloudwatch.Alarm | None = None
        if tier.min_tasks == 0:
            self.wake_up_alarm = self._add_wake_up(naming, tier, service, cluster, queue)
        inputs = _scale_in_inputs(service, cluster, queue)
        self.scale_in_alarm = self._add_scale_in(naming, tier, inputs)
        if tier.min_tasks == 0:
            self.scale_to_zero_alarm = self._add_scale_to_zero(naming, tier, inputs)

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

    def _add_scale_in(self, naming: Naming, tier: TierConfig,
                      inputs: dict[str, cloudwatch.IMetric]) -> cloudwatch.Alarm:
        action = appscaling.StepScalingAction(
            self, "ScaleInAction",
            scaling_target=self.target,
            adjustment_type=appscaling.AdjustmentType.PERCENT_CHANGE_IN_CAPACITY,
            min_adjustment_magnitude=1,
            # The highest work per task among the breaching minutes picks the (smaller) step.
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=cdk.Duration.seconds(SCALE_IN_COOLDOWN_SECONDS),
        )
        for lower, upper, percent in SCALE_IN_STEPS:
            action.add_adjustment(adjustment=percent, lower_bound=lower, upper_bound=upper)
        floor = max(tier.min_tasks, 1)
        return self._scaling_alarm(
            "ScaleInAlarm", naming.resource_name(tier.name, "scale-in"),
            f"{tier.name}: work per task (waiting + in flight) below "
            f"{SCALE_IN_BELOW_RATIO:g} x target ({tier.backlog_per_task_target:g}) for "
            f"{SCALE_IN_MINUTES} minutes while more than {floor} task(s) are wanted; removes 25-50 % "
            "of the tasks",
            cloudwatch.MathExpression(
                expression=SCALE_IN_EXPRESSION.format(
                    floor=floor, target=f"{tier.backlog_per_task_target:g}"),
                label="Work per task / target", using_metrics=inputs,
                period=cdk.Duration.minutes(1)),
            threshold=SCALE_IN_BELOW_RATIO,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD, action=action)

    def _add_scale_to_zero(self, naming: Naming, tier: TierConfig,
                           inputs: dict[str, cloudwatch.IMetric]) -> cloudwatch.Alarm:
        # -1 rather than "exactly 0": should the count have risen meanwhile, one task goes.
        action = appscaling.StepScalingAction(
            self, "ScaleToZeroAction", scaling_target=self.target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=cdk.Duration.seconds(SCALE_IN_COOLDOWN_SECONDS))
        action.add_adjustment(adjustment=-1, lower_bound=0)
        return self._scaling_alarm(
            "ScaleToZeroAlarm", naming.resource_name(tier.name, "scale-to-zero"),
            f"{tier.name}: no message waiting or in flight for {SCALE_IN_MINUTES} minutes while "
            "the service wants one task; stops it (the wake-ups start it again)",
            cloudwatch.MathExpression(
                expression=SCALE_TO_ZERO_EXPRESSION, label="Idle at one task",
                using_metrics={k: m for k, m in inputs.items() if k != "running"},
                period=cdk.Duration.minutes(1)),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            action=action)

    def _scaling_alarm(self, construct_id: str, name: str, description: str,
                       metric: cloudwatch.MathExpression, *, threshold: float,
                       comparison: cloudwatch.ComparisonOperator,
                       action: appscaling.StepScalingAction) -> cloudwatch.Alarm:
        # Every one of the minutes must breach; a minute without data does not.
        alarm = cloudwatch.Alarm(
            self, construct_id, alarm_name=name, alarm_description=description, metric=metric,
            threshold=threshold, comparison_operator=comparison,
            evaluation_periods=SCALE_IN_MINUTES, datapoints_to_alarm=SCALE_IN_MINUTES,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.ApplicationScalingAction(action))
        return alarm


def _scale_in_inputs(service: ecs.FargateService, cluster: ecs.ICluster,
                     queue: sqs.IQueue) -> dict[str, cloudwatch.IMetric]:
    """Per-minute inputs of the scale-in alarms: the highest queue depths and desired count of the
    minute (a minute that saw work or wanted more tasks counts as such), average running tasks."""
    minute = cdk.Duration.minutes(1)
    return {
        "visible": queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=minute),
        "in_flight": queue.metric_approximate_number_of_messages_not_visible(
            statistic="Maximum", period=minute),
        "desired": container_insights_metric("DesiredTaskCount", service, cluster,
                                             statistic="Maximum"),
        "running": container_insights_metric("RunningTaskCount", service, cluster),
    }


def _metric_query(query_id: str, namespace: str, metric_name: str, dimensions: list,
                  stat: str = "Average"
                  ) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
    return appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
        id=query_id,
        return_data=False,
        metric_stat=appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
            stat=stat,
            metric=appscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                namespace=namespace, metric_name=metric_name, dimensions=dimensions),
        ),
    )
