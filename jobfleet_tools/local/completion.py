"""Local mode's results bucket and job-event subscription, as the deployed environment has them.

The results bucket is created in moto and handed to every process as ``RESULTS_BUCKET``; the workers
publish "Job State Change" events to moto's default EventBridge bus (``JOB_EVENT_BUS``), where a rule
routes them to the queue ``<app>-<env>-job-events`` — a subscription like a team's own. A watcher thread
reads that queue, prints one console line per event and appends each event to ``events.jsonl`` in the
run directory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobfleet_config.config import EnvironmentConfig
from jobfleet_contract import environment as names

EVENT_SOURCE = "jobfleet"  # worker.events.EVENT_SOURCE / DETAIL_TYPE, the documented schema
DETAIL_TYPE = "Job State Change"
EVENTS_FILE = "events.jsonl"


def event_summary(event: dict[str, Any]) -> str:
    """One console line for a job event."""
    detail = event.get("detail", {})
    text = f"[events] {detail.get('state', '?'):<13} {detail.get('type', '?'):<12} {detail.get('jobId')}"
    if detail.get("result"):
        text += f" result s3://{detail['result']['bucket']}/{detail['result']['key']}"
    if detail.get("error"):
        text += f": {detail['error']}"
    return text


class LocalCompletion:
    def __init__(self, config: EnvironmentConfig, client: Callable[..., Any], run_dir: Path,
                 line: Callable[[str], None]) -> None:
        self.config = config
        self.environment = config.resource_name()
        self.bucket = config.resource_name("results")
        self.events_queue_name = config.resource_name("job-events")
        self.events_queue_url = ""
        self._client = client
        self._line = line
        self._events_file = run_dir / EVENTS_FILE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="job-events")

    def create(self) -> None:
        if self.config.results.enabled:
            self._client("s3").create_bucket(Bucket=self.bucket)
        if not self.config.events.enabled:
            return
        bus = self.config.events.bus_name
        events = self._client("events")
        if bus != "default":
            events.create_event_bus(Name=bus)
        sqs = self._client("sqs")
        self.events_queue_url = sqs.create_queue(QueueName=self.events_queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.events_queue_url,
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=self.events_queue_name, EventBusName=bus, EventPattern=json.dumps({
            "source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE],
            "detail": {"environment": [self.environment]}}))
        events.put_targets(Rule=self.events_queue_name, EventBusName=bus,
                           Targets=[{"Id": "console", "Arn": arn}])

    def env(self) -> dict[str, str]:
        """What the stacks set on the containers for results and events, as configured."""
        return names.completion_environment(
            results_bucket=self.bucket if self.config.results.enabled else None,
            event_bus=self.config.events.bus_name if self.config.events.enabled else None,
            environment_name=self.environment)

    def start(self) -> None:
        if self.config.events.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        sqs = self._client("sqs")
        with self._events_file.open("a", encoding="utf-8") as log:
            while not self._stop.is_set():
                try:
                    messages = sqs.receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=1).get("Messages", [])
                except Exception:  # moto stopping, or a transient error: try again shortly
                    self._stop.wait(1)
                    continue
                for message in messages:
                    event = json.loads(message["Body"])
                    log.write(json.dumps(event) + "\n")
                    log.flush()
                    self._line(event_summary(event))
                    sqs.delete_message(QueueUrl=self.events_queue_url,
                                       ReceiptHandle=message["ReceiptHandle"])
