"""Operator commands for a deployed (or local) JobFleet environment.

    python -m jobfleet_tools redrive --env prod --tier critical [--dry-run] [--type T] [--error-type E]
        [--older-than 2h] [--newer-than 1d] [--max N] [--rate R] [--mode auto|native|selective]
        [--status] [--function-name NAME] [--region R] [--local | --endpoint-url URL]

Deployed: invokes the environment's redrive function (`<app>-<env>-redrive`, or --function-name)
and prints its result as a table. Local (--local / --endpoint-url, e.g. against the moto of
`python -m jobfleet_tools local`): there is no Lambda service, so the function's own code runs in
this process against that endpoint, with the queue URLs looked up by their names
(`<app>-<env>-<tier>`, `...-dlq`).
Exit status: 0 done, 1 the redrive or AWS failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jobfleet_config.config import ConfigError, EnvironmentConfig, known_environments, load_environment

DEFAULT_LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIAL = "testing"
# Rows of the result table, in this order; anything else the function returns follows.
RESULT_ORDER = ("mode", "dryRun", "examined", "matched", "moved", "kept", "failed", "quarantined",
                "stoppedEarly", "stopReason", "remaining", "taskHandle", "approximateMessagesToMove")
TASK_COLUMNS = ("status", "startedAt", "moved", "toMove", "ratePerSecond", "taskHandle", "failureReason")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}

ClientFactory = Callable[..., Any]


_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
MAX_ERROR_CHARS = 300


def one_line(text: str) -> str:
    """An error as one line: an HTML error page (a local server's) shrinks to its title or text."""
    lowered = text.lower()
    starts = [index for index in (lowered.find("<!doctype"), lowered.find("<html")) if index >= 0]
    if starts:
        page = text[min(starts):]
        title = _TITLE.search(page)
        text = text[:min(starts)] + (title.group(1) if title else _TAG.sub(" ", page))
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


class UsageError(Exception):
    """Bad arguments: reported on one line, exit status 2."""


class OperationError(Exception):
    """The redrive or AWS failed: reported on one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the operator reads the problem, `--help` has the rest.
        raise UsageError(message)


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90, 90s, 15m, 2h, 7d)")
    return float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    redrive = _Parser(prog="python -m jobfleet_tools redrive",
                      description="Redrive one tier's DLQ through the redrive function.")
    redrive.add_argument("--env", required=True, help="environment name (cdk_app/environments/<env>.toml)")
    redrive.add_argument("--tier", required=True, help="tier whose DLQ is redriven")
    redrive.add_argument("--dry-run", action="store_true", help="count what would move, move nothing")
    redrive.add_argument("--type", dest="types", action="append", metavar="T",
                         help="only jobs of this type (repeatable)")
    redrive.add_argument("--error-type", dest="error_types", action="append", metavar="E",
                         help="only jobs that failed with this error type (repeatable)")
    redrive.add_argument("--older-than", type=_duration, metavar="S",
                         help="only jobs that failed at least this long ago (seconds, or 15m, 2h, 7d)")
    redrive.add_argument("--newer-than", type=_duration, metavar="S",
                         help="only jobs that failed at most this long ago")
    redrive.add_argument("--max", type=_positive(int), metavar="N", help="redrive at most N messages")
    redrive.add_argument("--rate", type=_positive(float), metavar="R", help="at most R messages per second")
    redrive.add_argument("--mode", choices=("auto", "native", "selective"),
                         help="native = SQS move task (no filter, count or quarantine); default auto")
    redrive.add_argument("--status", action="store_true", help="list the DLQ's native move tasks instead")
    redrive.add_argument("--function-name", help="redrive function to invoke (default <app>-<env>-redrive)")
    redrive.add_argument("--region", help="AWS region (default: the environment's, else the AWS default)")
    redrive.add_argument("--local", action="store_true",
                         help="run against the local endpoint in AWS_ENDPOINT_URL (no Lambda service)")
    redrive.add_argument("--endpoint-url", help="run against this local endpoint (implies --local)")
    redrive.add_argument("--status-table", help="local mode: job status table to mark redriven jobs queued")
    return redrive


def redrive_event(args: argparse.Namespace) -> dict[str, Any]:
    """The function's event for these arguments (the contract in DESIGN.md)."""
    redrive_options = (args.dry_run, args.types, args.error_types, args.older_than, args.newer_than,
                       args.max, args.rate, args.mode)
    if args.status:
        if any(option not in (None, False) for option in redrive_options):
            raise UsageError("--status lists move tasks and takes no redrive options")
        return {"action": "status", "tier": args.tier}
    event: dict[str, Any] = {"tier": args.tier}
    if args.dry_run:
        event["dryRun"] = True
    if args.mode:
        event["mode"] = args.mode
    if args.max is not None:
        event["maxMessages"] = args.max
    if args.rate is not None:
        event["ratePerSecond"] = args.rate
    message_filter = {key: value for key, value in (
        ("types", args.types), ("errorTypes", args.error_types),
        ("olderThanSeconds", args.older_than), ("newerThanSeconds", args.newer_than),
    ) if value is not None}
    if message_filter:
        event["filter"] = message_filter
    from redrive.request import InvalidEvent, validate_event

    # The function's own event model: what it would refuse is a bad argument here, not a failed run.
    try:
        validate_event(event)
    except InvalidEvent as invalid:
        raise UsageError(str(invalid)) from None
    return event


def invoke_deployed(config: EnvironmentConfig, args: argparse.Namespace, event: dict[str, Any],
                    client_factory: ClientFactory) -> dict[str, Any]:
    function_name = args.function_name or config.resource_name("redrive")
    region = args.region or config.app.region or None
    # The call lasts as long as the redrive; a retried invoke would start a second redrive.
    client_config = Config(read_timeout=config.redrive.timeout_seconds + 30, connect_timeout=10,
                           retries={"total_max_attempts": 1})
    lambda_client = client_factory("lambda", region_name=region, config=client_config)
    try:
        response = lambda_client.invoke(FunctionName=function_name, InvocationType="RequestResponse",
                                        Payload=json.dumps(event).encode())
    except lambda_client.exceptions.ResourceNotFoundException:
        raise OperationError(
            f"no function {function_name} in {lambda_client.meta.region_name}: is the {config.name} "
            "stage deployed there? (or pass --function-name / --region)"
        ) from None
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        detail = payload if not isinstance(payload, dict) else (
            f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}")
        raise OperationError(f"{function_name} failed: {detail}")
    return payload


class _Deadline:
    """Local stand-in for the Lambda context's clock: the deployed function's timeout."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining_millis(self) -> int:
        return int((self._end - time.monotonic()) * 1000)


def run_local(config: EnvironmentConfig, args: argparse.Namespace, event: dict[str, Any],
              client_factory: ClientFactory) -> dict[str, Any]:
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise UsageError("--local needs --endpoint-url or AWS_ENDPOINT_URL")
    # Imported here: only the local path runs the function's code in this process.
    from redrive.ledger import CopyLedger
    from redrive.request import QueuePair
    from redrive.service import run_redrive

    from jobfleet_contract.status import JobStatusStore

    region = args.region or config.app.region or os.environ.get("AWS_REGION") or DEFAULT_LOCAL_REGION
    # The local endpoint accepts any credentials: a newcomer without an AWS profile needs none.
    local: dict[str, Any] = {"endpoint_url": endpoint, "region_name": region,
                             "aws_access_key_id": LOCAL_CREDENTIAL, "aws_secret_access_key": LOCAL_CREDENTIAL}
    sqs = client_factory("sqs", **local)
    queue_name = config.resource_name(args.tier)
    try:
        queues = QueuePair(dlq_url=sqs.get_queue_url(QueueName=f"{queue_name}-dlq")["QueueUrl"],
                           target_url=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"])
    except sqs.exceptions.QueueDoesNotExist:
        raise OperationError(f"queue {queue_name} or {queue_name}-dlq does not exist at {endpoint}") from None
    status_store = ledger = None
    if args.status_table:
        dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=region,
                                  aws_access_key_id=LOCAL_CREDENTIAL, aws_secret_access_key=LOCAL_CREDENTIAL)
        status_store = JobStatusStore(dynamodb.Table(args.status_table), ttl_days=config.status.ttl_days)
        ledger = CopyLedger(dynamodb.Table(args.status_table))
    return run_redrive(event, sqs=sqs, tier_queues={args.tier: queues},
                       max_redrives=config.redrive.max_redrives,
                       remaining_millis=_Deadline(config.redrive.timeout_seconds).remaining_millis,
                       status_store=status_store, ledger=ledger)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[_cell(value) for value in row] for row in [headers, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render(result: dict[str, Any], title: str) -> list[str]:
    if result.get("action") == "status":
        tasks = result.get("tasks", [])
        lines = [f"{title}: {result.get('dlqMessages')} message(s) in the DLQ, {len(tasks)} move task(s)"]
        if tasks:
            rows = [[task.get(column) for column in TASK_COLUMNS] for task in tasks]
            lines += format_table(TASK_COLUMNS, rows)
        return lines
    keys = [key for key in RESULT_ORDER if key in result] + sorted(set(result) - set(RESULT_ORDER))
    lines = [title, *format_table(("field", "value"), [(key, result[key]) for key in keys])]
    if result.get("mode") == "native":
        lines.append("SQS moves the messages in the background; follow it with --status.")
    return lines


def redrive(args: argparse.Namespace, client_factory: ClientFactory, out: TextIO) -> int:
    environments = known_environments()
    if args.env not in environments:
        raise UsageError(f"unknown environment {args.env!r} (environments: {', '.join(environments)})")
    try:
        config = load_environment(args.env)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    tier_names = [tier.name for tier in config.tiers]
    if args.tier not in tier_names:
        raise UsageError(f"unknown tier {args.tier!r} in {config.name} (tiers: {', '.join(tier_names)})")
    event = redrive_event(args)
    local = args.local or args.endpoint_url is not None
    try:
        if local:
            result = run_local(config, args, event, client_factory)
        else:
            result = invoke_deployed(config, args, event, client_factory)
    except (ClientError, BotoCoreError) as error:
        raise OperationError(one_line(str(error))) from None
    if not isinstance(result, dict):
        raise OperationError(f"unexpected result from the redrive function: {result!r}")
    if "error" in result:
        raise OperationError(f"redrive refused: {result['error']}")
    where = "local" if local else (args.function_name or config.resource_name("redrive"))
    for line in render(result, f"redrive {config.name}/{args.tier} ({where})"):
        print(line, file=out)
    return 0


def main(argv: Sequence[str] | None = None, client_factory: ClientFactory = boto3.client,
         out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return redrive(args, client_factory, out)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=err)
        return 2
    except OperationError as error:
        print(f"{parser.prog}: {error}", file=err)
        return 1

