"""`python -m jobfleet_tools local`: the command line of local mode (see jobfleet_tools.local)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from worker.config import DEFAULT_HANDLERS

import jobfleet_tools.local as local_mode
from jobfleet_config.config import ENVIRONMENTS_DIR, ConfigError, load_environment
from jobfleet_contract import environment as names
from jobfleet_contract.environment import ApiAuth, auth_scopes
from jobfleet_tools.local.fleet import LocalFleet, StartupError
from jobfleet_tools.local.processes import HOST, Output, free_port, port_is_free


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobfleet_tools local",
                                     description=local_mode.__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="dev", help="environment to run (default: dev)")
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--config-dir", type=Path, default=ENVIRONMENTS_DIR,
                        help="directory of defaults.toml + <env>.toml (default: cdk_app/environments)")
    parser.add_argument("--handlers", default="",
                        help="extra handler modules (comma-separated), appended to WORKER_HANDLERS")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="where logs go (default: a new temporary directory)")
    parser.add_argument("--auth-issuer", default="",
                        help="require bearer tokens of this issuer (JWKS at <issuer>/.well-known/jwks.json)")
    parser.add_argument("--auth-audience", default="", help="the audience those tokens must be for")
    args = parser.parse_args(argv)
    out = Output(sys.stdout)
    try:
        config = load_environment(args.env, args.config_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if bool(args.auth_issuer) != bool(args.auth_audience):
        print("error: --auth-issuer and --auth-audience go together", file=sys.stderr)
        return 2
    auth = ApiAuth()
    if args.auth_issuer:
        auth = ApiAuth("jwt", args.auth_issuer, args.auth_audience, auth_scopes(args.auth_audience),
                       config.auth.rate_limit_per_client)
    if args.port and not port_is_free(args.port):
        # Before anything starts: the health check would otherwise find the other instance's API.
        print(f"error: port {args.port} on {HOST} is in use (another local mode?); pick another --port "
              "or stop it", file=sys.stderr)
        return 2
    base = os.environ.get(names.WORKER_HANDLERS) or DEFAULT_HANDLERS
    handlers = ",".join(m.strip() for m in f"{base},{args.handlers}".split(",") if m.strip())
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="jobfleet-local-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    fleet = LocalFleet(config, port=args.port or free_port(), handlers=handlers, run_dir=run_dir, output=out,
                       auth=auth)
    hard = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if fleet.stop_event.is_set():
            hard.set()  # second Ctrl-C: no more waiting
        else:
            out.line(f"{signal.Signals(signum).name}: stopping (workers drain; Ctrl-C again to kill)")
        fleet.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        fleet.start()
        if not fleet.stop_event.is_set():
            fleet.banner()
            fleet.wait()
    except StartupError as exc:
        out.line(f"error: {exc}")
        fleet.exit_code = 1
    finally:
        fleet.shutdown(hard)
    out.line("local mode stopped")
    return fleet.exit_code
