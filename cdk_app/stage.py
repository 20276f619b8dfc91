"""One cdk.Stage per environment: wires the stacks together, passing objects, never ARNs."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from stacks.batch import BatchStack
from stacks.checkov import skip_cdk_provider_checks
from stacks.compute import ComputeStack
from stacks.network import NetworkStack
from stacks.operations import OperationsStack
from stacks.stateful import StatefulStack


class JobFleetStage(cdk.Stage):
    def __init__(self, scope: Construct, config: EnvironmentConfig) -> None:
        env = cdk.Environment(account=config.app.account or None, region=config.app.region or None)
        super().__init__(scope, config.name, env=env)
        self.config = config
        tags = {"app": config.app.name, "environment": config.name}
        for key, value in tags.items():
            cdk.Tags.of(self).add(key, value)

        def stack_props(stack: str) -> dict:
            return {"stack_name": config.resource_name(stack),
                    "description": f"JobFleet {config.name}: {stack}",
                    "termination_protection": config.app.retain}

        self.network = NetworkStack(self, "Network", config=config, **stack_props("network"))
        self.stateful = StatefulStack(self, "Stateful", config=config, **stack_props("stateful"))
        self.compute = ComputeStack(self, "Compute", config=config, vpc=self.network.vpc,
                                    tier_queues=self.stateful.tier_queues,
                                    status_table=self.stateful.status_table,
                                    **stack_props("compute"))
        # Batch tier (AWS Batch Spot fed by a submitter function); only when a tier has runtime = "batch".
        self.batch: BatchStack | None = None
        if config.batch_tiers:
            self.batch = BatchStack(self, "Batch", config=config, vpc=self.network.vpc,
                                    tier_queues=self.stateful.tier_queues,
                                    status_table=self.stateful.status_table,
                                    key=self.stateful.key, **stack_props("batch"))
        self.operations = OperationsStack(self, "Operations", config=config, stateful=self.stateful,
                                          compute=self.compute, batch=self.batch,
                                          **stack_props("operations"))
        for stack in (self.network, self.stateful, self.compute, self.batch, self.operations):
            if stack is not None:
                skip_cdk_provider_checks(stack)
