"""Local mode as a whole: start moto and its resources, the API, the workers and the batch tiers;
wait until they are ready; watch them; stop everything in order."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from jobfleet_config.config import EnvironmentConfig
from jobfleet_contract.environment import ApiAuth
from jobfleet_tools.local.batch import BATCH_PARALLEL, LocalBatchTier
from jobfleet_tools.local.completion import EVENTS_FILE, LocalCompletion
from jobfleet_tools.local.environment import api_env, worker_env
from jobfleet_tools.local.processes import HOST, Child, Output, spawn, stop
from jobfleet_tools.local.resources import LocalAws

STARTUP_TIMEOUT_SECONDS = 60.0
API_STOP_SECONDS = 10.0
# The banner's example job (worker.examples' onboarding handler needs a userId).
EXAMPLE_JOB = {"type": "onboarding", "payload": {"userId": "u-123"}}


class LocalFleet:
    def __init__(self, config: EnvironmentConfig, *, port: int, handlers: tuple[str, ...], run_dir: Path,
                 output: Output, batch_parallel: int = BATCH_PARALLEL, auth: ApiAuth | None = None) -> None:
        self.config = config
        # Off by default locally (the banner says so); the same token auth as deployed on request.
        self.auth = auth or ApiAuth()
        self.port = port
        self.handlers = handlers  # --handlers: imported by every tier after its configured ones
        self.run_dir = run_dir
        self.out = output
        self.batch_parallel = batch_parallel
        self.aws = LocalAws(config)
        self.completion = LocalCompletion(config, self.aws.client, run_dir, output.line)
        self.stop_event = threading.Event()
        self.children: list[Child] = []
        self.batch_tiers: list[LocalBatchTier] = []
        self.exit_code = 0

    def spawn(self, name: str, args: list[str], env: dict[str, str], stop_seconds: float) -> Child:
        child = spawn(name, args, env, stop_seconds, run_dir=self.run_dir, out=self.out)
        self.children.append(child)
        return child

    def start_api(self) -> Child:
        return self.spawn("api", ["api"], api_env(self.aws, self.config, self.port, self.auth),
                          API_STOP_SECONDS)

    def start(self) -> None:
        self.aws.start()
        self.aws.create_resources()
        self.completion.create()
        self.completion.start()
        api = self.start_api()
        workers = [self.spawn(tier.name, ["run"],
                              worker_env(self.aws, self.config, tier, self.handlers, self.run_dir,
                                         self.completion),
                              tier.stop_timeout_seconds)
                   for tier in self.config.service_tiers]
        for tier in self.config.batch_tiers:
            batch_tier = LocalBatchTier(self.aws, self.config, tier, handlers=self.handlers,
                                        completion=self.completion, run_dir=self.run_dir, out=self.out,
                                        parallel=self.batch_parallel)
            batch_tier.create()
            self.batch_tiers.append(batch_tier)
            batch_tier.start()
        self._wait_ready(api, workers)

    def _wait_ready(self, api: Child, workers: list[Child]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        pending = {"api": api, **{w.name: w for w in workers}}
        while pending and not self.stop_event.is_set():
            for name, child in list(pending.items()):
                if child.proc.poll() is not None:
                    raise StartupError(f"{name} exited with code {child.proc.returncode} while starting; "
                                       f"its log ({child.log_path}):\n{child.tail()}")
                ready = (self._api_healthy() if name == "api"
                         else (self.run_dir / f"{name}.health").exists())  # = environment.health_file
                if ready:
                    del pending[name]
            if time.monotonic() > deadline:
                raise StartupError(f"not ready after {STARTUP_TIMEOUT_SECONDS:.0f}s: {', '.join(pending)}")
            self.stop_event.wait(0.2)

    def _api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def banner(self) -> None:
        url = self.api_url
        tiers = ", ".join(f"{t.name} ({t.runtime})" for t in self.config.tiers)
        types = ", ".join(f"{k} -> {v}" for k, v in self.config.job_types.items())
        self.out.line(f"JobFleet local mode: environment {self.config.name!r}")
        self.out.line(f"  API:          {url}   (OpenAPI: {url}/openapi.json)")
        self.out.line(f"  moto:         {self.aws.endpoint}")
        self.out.line(f"  tiers:        {tiers}")
        self.out.line(f"  job types:    {types}")
        self.out.line(f"  status table: {self.aws.table_name}")
        if self.config.results.enabled:
            self.out.line(f"  results:      s3://{self.completion.bucket}/results/<jobId>.json")
        if self.config.events.enabled:
            self.out.line(f"  job events:   {self.completion.events_queue_url} "
                          f"(also {self.run_dir / EVENTS_FILE})")
        self.out.line(f"  logs:         {self.run_dir}")
        if self.auth.mode == "jwt":
            self.out.line(f"  auth:         bearer tokens of {self.auth.issuer} for {self.auth.audience}")
        else:
            self.out.line("  auth:         OFF: anyone on this machine may submit and read jobs "
                          "(--auth-issuer/--auth-audience turn token auth on)")
        self.out.line("Try:")
        self.out.line(f"  curl -s -X POST {url}/jobs -H 'content-type: application/json' "
                      f"-d '{json.dumps(EXAMPLE_JOB)}'")
        self.out.line(f"  curl -s {url}/jobs/<jobId>")
        self.out.line("  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
                      f"aws --endpoint-url {self.aws.endpoint} --region {self.aws.region} "
                      f"sqs receive-message --queue-url {self.aws.dlq_urls[self.config.tiers[0].name]} "
                      "--message-attribute-names All")
        self.out.line(f"  python -m jobfleet_tools redrive --env {self.config.name} "
                      f"--tier {self.config.tiers[0].name} --endpoint-url {self.aws.endpoint} "
                      f"--status-table {self.aws.table_name} --dry-run")
        self.out.line("Ctrl-C stops everything.")

    def wait(self) -> None:
        """Until a stop is requested, or a child dies on its own (then everything stops, exit 1)."""
        while not self.stop_event.wait(0.2):
            for child in self.children:
                if child.proc.poll() is not None:
                    self.out.line(f"{child.name} exited unexpectedly with code {child.proc.returncode}; "
                                  f"stopping. Its log ({child.log_path}):\n{child.tail()}")
                    self.exit_code = 1
                    self.stop_event.set()
                    return

    def request_stop(self) -> None:
        self.stop_event.set()

    def shutdown(self, hard: threading.Event) -> None:
        """Batch tiers first (no new job), then SIGTERM everything, wait each group's budget, SIGKILL."""
        self.stop_event.set()
        for batch_tier in self.batch_tiers:
            batch_tier.stop(hard)
        stop(self.children, self.out, hard)
        self.completion.stop()
        if self.aws.stop():
            self.out.line("stopped moto")


class StartupError(RuntimeError):
    pass
