"""API alarms: load balancer 5xx, target 5xx rate, p95 response time, unhealthy hosts."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from jobfleet_config.config import AlarmsConfig
from jobfleet_config.naming import Naming
from stacks.constructs.alarm_topic import AlarmTopic, Comparison, Missing

ELB_5XX = "alb-5xx"
TARGET_5XX_RATE = "target-5xx-rate"
P95_LATENCY = "p95-latency"
UNHEALTHY_HOSTS = "unhealthy-hosts"
SCOPE = "api"

FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_MINUTE = cdk.Duration.minutes(1)


class ApiAlarms(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, thresholds: AlarmsConfig,
                 naming: Naming, load_balancer: elbv2.ApplicationLoadBalancer,
                 target_group: elbv2.ApplicationTargetGroup, topic: AlarmTopic) -> None:
        super().__init__(scope, construct_id)
        # Dimensions from the load balancer's and target group's own full-name attributes. (The
        # target group's `metrics` derive the LoadBalancer dimension by splitting the listener
        # ARN, which across stacks becomes Fn::Split over an imported value.)
        lb_dims = {"LoadBalancer": load_balancer.load_balancer_full_name}
        tg_dims = {**lb_dims, "TargetGroup": target_group.target_group_full_name}

        def metric(name: str, dims: dict, statistic: str, period: cdk.Duration,
                   label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="AWS/ApplicationELB", metric_name=name,
                                     dimensions_map=dims, statistic=statistic, period=period,
                                     label=label)

        self.elb_5xx = metric("HTTPCode_ELB_5XX_Count", lb_dims, "Sum", FIVE_MINUTES, "ALB 5xx")
        self.target_5xx = metric("HTTPCode_Target_5XX_Count", tg_dims, "Sum", FIVE_MINUTES,
                                 "target 5xx")
        self.requests = metric("RequestCount", tg_dims, "Sum", FIVE_MINUTES, "requests")
        self.p95 = metric("TargetResponseTime", tg_dims, "p95", FIVE_MINUTES, "p95")
        self.unhealthy = metric("UnHealthyHostCount", tg_dims, "Maximum", ONE_MINUTE, "unhealthy")
        self.healthy = metric("HealthyHostCount", tg_dims, "Minimum", ONE_MINUTE, "healthy")

        def name(what: str) -> str:
            return naming.resource_name(SCOPE, what)

        self.alarms: dict[str, cloudwatch.Alarm] = {}
        # The ALB publishes HTTPCode_ELB_5XX_Count only when it is non-zero: no data = no 5xx.
        self.alarms[ELB_5XX] = topic.alarm(
            self, "Elb5xx", alarm_name=name(ELB_5XX),
            description="The load balancer itself answered 5xx (no healthy target, target "
                        "timeouts or connection errors).",
            metric=self.elb_5xx, threshold=thresholds.alb_5xx_threshold,
            comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )
        # FILL(errors, 0): an interval with requests but no 5xx has no 5xx datapoint. No requests
        # at all = no data = nothing failing: not breaching.
        rate = cloudwatch.MathExpression(
            expression="100 * FILL(errors, 0) / requests",
            using_metrics={"errors": self.target_5xx, "requests": self.requests},
            label="target 5xx % of requests", period=FIVE_MINUTES,
        )
        self.target_5xx_rate = rate
        self.alarms[TARGET_5XX_RATE] = topic.alarm(
            self, "Target5xxRate", alarm_name=name(TARGET_5XX_RATE),
            description=f"More than {thresholds.target_5xx_rate_percent:g} % of API requests "
                        "answered 5xx by the API tasks in 5 minutes, twice in a row.",
            metric=rate, threshold=thresholds.target_5xx_rate_percent,
            comparison=Comparison.GREATER_THAN_THRESHOLD,
            evaluation_periods=2, missing=Missing.NOT_BREACHING,
        )
        # No requests = no response times = nothing slow: not breaching.
        self.alarms[P95_LATENCY] = topic.alarm(
            self, "P95Latency", alarm_name=name(P95_LATENCY),
            description=f"p95 API response time above {thresholds.p95_response_seconds:g} s "
                        "for 15 minutes.",
            metric=self.p95, threshold=thresholds.p95_response_seconds,
            comparison=Comparison.GREATER_THAN_THRESHOLD,
            evaluation_periods=3, missing=Missing.NOT_BREACHING,
        )
        # The ALB publishes UnHealthyHostCount every minute while the target group is attached,
        # zero included; a gap means the target group or load balancer is gone: breaching.
        self.alarms[UNHEALTHY_HOSTS] = topic.alarm(
            self, "UnhealthyHosts", alarm_name=name(UNHEALTHY_HOSTS),
            description="API tasks failing the target group health check for 3 minutes.",
            metric=self.unhealthy, threshold=1,
            comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=3, missing=Missing.BREACHING,
        )
