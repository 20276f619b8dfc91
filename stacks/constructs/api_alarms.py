"""API alarms: load balancer 5xx, target 5xx rate, p95 response time, unhealthy hosts."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from cdk_app.config import EnvironmentConfig
from stacks.constructs.alarm_topic import AlarmTopic, Comparison, Missing

ELB_5XX = "alb-5xx"
TARGET_5XX_RATE = "target-5xx-rate"
P95_LATENCY = "p95-latency"
UNHEALTHY_HOSTS = "unhealthy-hosts"
SCOPE = "api"

FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_MINUTE = cdk.Duration.minutes(1)


class ApiAlarms(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 load_balancer: elbv2.IApplicationLoadBalancer,
                 target_group: elbv2.IApplicationTargetGroup, topic: AlarmTopic) -> None:
        super().__init__(scope, construct_id)
        thresholds = config.alarms
        lb_metrics = load_balancer.metrics
        tg_metrics = target_group.metrics
        self.elb_5xx = lb_metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT,
                                                statistic="Sum", period=FIVE_MINUTES)
        self.target_5xx = tg_metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                                                      statistic="Sum", period=FIVE_MINUTES)
        self.requests = tg_metrics.request_count(statistic="Sum", period=FIVE_MINUTES)
        self.p95 = tg_metrics.target_response_time(statistic="p95", period=FIVE_MINUTES)
        self.unhealthy = tg_metrics.unhealthy_host_count(statistic="Maximum", period=ONE_MINUTE)
        self.healthy = tg_metrics.healthy_host_count(statistic="Minimum", period=ONE_MINUTE)

        def name(what: str) -> str:
            return config.resource_name(SCOPE, what)

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
