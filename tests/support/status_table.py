"""Fresh job-status tables on the moto server, made as local mode makes the real one."""

from __future__ import annotations

import uuid
from typing import Any

import boto3

from jobfleet_tools.local.resources import create_status_table

REGION = "us-east-1"


def new_status_table(endpoint: str, prefix: str = "jobs") -> Any:
    """A new status table (a unique name starting with ``prefix``) as a boto3 Table resource."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_status_table(boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint), name)
    return boto3.resource("dynamodb", region_name=REGION, endpoint_url=endpoint).Table(name)
