"""Load traces: CSV `minute,job_type,count[,mean_seconds]`, one row per job type and minute.

`minute` counts from 0 (the start of the trace), `count` jobs of `job_type` are submitted during
that minute (spread uniformly over it by the simulator), and the optional `mean_seconds` overrides
the tier's `expected_job_seconds` as the mean duration of those jobs. Lines starting with `#`
are comments. Every problem raises `TraceError` naming the file, the line and what is allowed.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

TRACES_DIR = Path(__file__).parent / "traces"
COLUMNS = ("minute", "job_type", "count")
OPTIONAL_COLUMNS = ("mean_seconds",)


class TraceError(ValueError):
    """A trace problem, as one line: `<file>:<line>: <what is wrong>`."""


@dataclasses.dataclass(frozen=True)
class TraceRow:
    minute: int
    job_type: str
    count: int
    mean_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Trace:
    name: str
    rows: tuple[TraceRow, ...]

    @property
    def minutes(self) -> int:
        """Length of the trace: up to the end of its last minute."""
        return max((row.minute for row in self.rows), default=-1) + 1

    @property
    def job_types(self) -> set[str]:
        return {row.job_type for row in self.rows}

    def jobs(self) -> int:
        return sum(row.count for row in self.rows)


def resolve(name_or_path: str) -> Path:
    """A path as given, or the name of a committed trace (`weekday` -> traces/weekday.csv)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    committed = TRACES_DIR / f"{name_or_path}.csv"
    if committed.exists():
        return committed
    known = ", ".join(sorted(p.stem for p in TRACES_DIR.glob("*.csv")))
    raise TraceError(f"{name_or_path}: no such file, and not a committed trace ({known})")


def load(name_or_path: str, job_types: set[str] | None = None) -> Trace:
    """Read and check a trace; `job_types` (when given) are the only types allowed in it."""
    path = resolve(name_or_path)
    rows: list[TraceRow] = []
    with path.open(newline="") as handle:
        lines = (line for line in handle if line.strip() and not line.lstrip().startswith("#"))
        reader = csv.DictReader(lines)
        header = tuple(reader.fieldnames or ())
        missing = [c for c in COLUMNS if c not in header]
        unknown = [c for c in header if c not in COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown:
            raise TraceError(f"{path}: header {','.join(header)!r}: needs columns "
                             f"{','.join(COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})")
        for number, record in enumerate(reader, start=2):
            rows.append(_row(path, number, record, job_types))
    if not rows:
        raise TraceError(f"{path}: no rows; a trace needs at least one minute,job_type,count line")
    return Trace(name=path.stem, rows=tuple(rows))


def _row(path: Path, number: int, record: dict[str, str], job_types: set[str] | None) -> TraceRow:
    def fail(column: str, allowed: str) -> TraceError:
        return TraceError(f"{path}:{number}: {column} = {record.get(column)!r}: {allowed}")

    def number_in(column: str, kind: type, allowed: str, ok) -> float | None:
        """The column as `kind` if `ok` accepts it, else a TraceError; None when empty."""
        raw = (record.get(column) or "").strip()
        if not raw:
            return None
        try:
            value = kind(raw)
        except ValueError:
            raise fail(column, allowed) from None
        if not ok(value):
            raise fail(column, allowed)
        return value

    def count_in(column: str) -> int:
        value = number_in(column, int, "an integer >= 0", lambda v: v >= 0)
        if value is None:
            raise fail(column, "an integer >= 0")
        return int(value)

    minute = count_in("minute")
    job_type = (record["job_type"] or "").strip()
    if not job_type or (job_types is not None and job_type not in job_types):
        raise fail("job_type", f"a job type of the environment: {', '.join(sorted(job_types or ()))}")
    count = count_in("count")
    mean_seconds = number_in("mean_seconds", float, "a number > 0 (seconds), or empty", lambda v: v > 0)
    return TraceRow(minute, job_type, count, mean_seconds)
