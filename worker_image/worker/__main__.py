"""Command line: ``python -m worker run | run-one | health | api``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from botocore.exceptions import NoRegionError

from jobfleet_contract import environment as names
from jobfleet_contract.attributes import MAX_REDRIVE_COUNT
from jobfleet_contract.batch import EXIT_PERMANENT
from jobfleet_contract.environment import ConfigError, env_number, parse_handlers
from jobfleet_contract.status import status_store_from_env
from worker.completion import Completion
from worker.config import DEFAULT_HANDLERS, DEFAULT_HEALTH_FILE, WorkerConfig
from worker.dispatch import load_handler_modules
from worker.lifecycle import health_file_fresh, install_stop_signals
from worker.memory import memory_reader
from worker.observability import configure_logging
from worker.run_one import run_one
from worker.runtime import Worker
from worker.settle import status_dynamodb
from worker.transport import SqsTransport, sqs_client

DEFAULT_HEALTH_MAX_AGE = 120.0  # > 20 s long poll + botocore retries + receive backoff


def _run() -> int:
    config = WorkerConfig.from_env()
    load_handler_modules(config.handler_modules)
    status_store = status_store_from_env(os.environ, lambda: status_dynamodb(os.environ))
    transport = SqsTransport(
        sqs_client(read_timeout=config.poll_wait_seconds + 20), config.queue_url, config.dlq_url
    )
    worker = Worker(
        config,
        transport,
        memory_reader=memory_reader(config.memory_limit_bytes),
        status_store=status_store,
        completion=Completion.from_env(),
    )
    install_stop_signals(worker.request_stop)
    return worker.run()


def _generation(text: str) -> int:
    """--generation: a whole number from 0 (argparse turns the ValueError into a one-line usage error)."""
    value = int(text)
    if not 0 <= value <= MAX_REDRIVE_COUNT:
        raise ValueError(text)
    return value


def _run_one(args: argparse.Namespace) -> int:
    if args.envelope is not None:
        text = args.envelope
    elif args.envelope_file is not None:
        try:
            text = Path(args.envelope_file).read_text()
        except OSError as exc:
            raise ConfigError(f"--envelope-file {args.envelope_file}: {exc.strerror}") from None
    elif os.environ.get(names.JOB_ENVELOPE):
        text = os.environ[names.JOB_ENVELOPE]
    else:
        print("run-one needs --envelope, --envelope-file or JOB_ENVELOPE", file=sys.stderr)
        return EXIT_PERMANENT
    load_handler_modules(parse_handlers(os.environ, DEFAULT_HANDLERS))
    return run_one(text, status_store_from_env(os.environ, lambda: status_dynamodb(os.environ)),
                   completion=Completion.from_env(), generation=args.generation)


def _health(max_age: float | None) -> int:
    if max_age is None:
        max_age = env_number(
            os.environ, names.HEALTH_MAX_AGE_SECONDS, DEFAULT_HEALTH_MAX_AGE, minimum=1, maximum=86400
        )
    return 0 if health_file_fresh(os.environ.get(names.HEALTH_FILE) or DEFAULT_HEALTH_FILE, max_age) else 1


def api_bind_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where `python -m worker api` listens (the rest of its settings: worker.api.ApiSettings)."""
    return env.get(names.API_HOST, "0.0.0.0"), env_number(env, names.PORT, 8080, minimum=1, maximum=65535,
                                                           integer=True)


def _api() -> int:
    host, port = api_bind_address(os.environ)
    import uvicorn  # only the API service needs it

    uvicorn.run("worker.api:app", host=host, port=port, log_config=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="consume the queue (QUEUE_URL) until SIGTERM")
    one = commands.add_parser("run-one", help="run one job from its envelope (AWS Batch entry point)")
    source = one.add_mutually_exclusive_group()
    source.add_argument("--envelope", help="envelope JSON")
    source.add_argument("--envelope-file", help="path of a file holding the envelope JSON")
    one.add_argument("--generation", type=_generation, default=None,
                     help="the message's redrive generation (the job parameter `generation`; "
                          "jobfleet_contract/batch.py)")
    health = commands.add_parser("health", help="exit 0 if the poll loop touched HEALTH_FILE recently")
    health.add_argument("--max-age", type=float, help="seconds (default: HEALTH_MAX_AGE_SECONDS, else 120)")
    commands.add_parser("api", help="serve the job API (worker.api:app) on $PORT")
    args = parser.parse_args(argv)

    try:
        if args.command == "health":
            return _health(args.max_age)
        configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
        if args.command == "run":
            return _run()
        if args.command == "run-one":
            return _run_one(args)
        return _api()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_PERMANENT
    except NoRegionError:
        print(f"configuration error: no AWS region: set {names.AWS_REGION} or {names.AWS_DEFAULT_REGION}",
              file=sys.stderr)
        return EXIT_PERMANENT


if __name__ == "__main__":
    sys.exit(main())
