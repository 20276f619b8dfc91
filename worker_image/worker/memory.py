"""Memory use and limit of this container: cgroup v2, else cgroup v1, else process-tree RSS vs host memory."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as a huge page-aligned number rather than "max".
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryReading:
    used_bytes: int
    limit_bytes: int

    @property
    def fraction(self) -> float:
        return self.used_bytes / self.limit_bytes if self.limit_bytes else 0.0


MemoryReader = Callable[[], MemoryReading]


def _stat_value(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def read_cgroup_v2(root: Path = CGROUP_ROOT) -> MemoryReading | None:
    """Working set = memory.current minus inactive file cache: page cache the kernel can drop must not
    pause the worker (the same figure ECS/kubelet use for OOM decisions)."""
    current, maximum = root / "memory.current", root / "memory.max"
    if not current.exists() or not maximum.exists():
        return None
    limit = maximum.read_text().strip()
    if limit == "max":
        return None
    used = int(current.read_text()) - _stat_value(root / "memory.stat", "inactive_file")
    return MemoryReading(max(0, used), int(limit))


def read_cgroup_v1(root: Path = CGROUP_ROOT / "memory") -> MemoryReading | None:
    usage, limit_file = root / "memory.usage_in_bytes", root / "memory.limit_in_bytes"
    if not usage.exists() or not limit_file.exists():
        return None
    limit = int(limit_file.read_text())
    if limit >= _V1_UNLIMITED:
        return None
    used = int(usage.read_text()) - _stat_value(root / "memory.stat", "total_inactive_file")
    return MemoryReading(max(0, used), limit)


def process_tree_rss() -> int:
    """RSS of this process and its children (isolated handler processes count too)."""
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and reading
    return total


def memory_reader(limit_override: int | None = None) -> MemoryReader:
    """Pick the source once at start-up. An explicit limit (WORKER_MEMORY_LIMIT_MIB) means "measure the
    process tree against this", for hosts where the container has no cgroup limit."""
    if limit_override is None:
        for read in (read_cgroup_v2, read_cgroup_v1):
            if read() is not None:
                return lambda: read() or MemoryReading(process_tree_rss(), _host_memory())
    limit = limit_override or _host_memory()
    return lambda: MemoryReading(process_tree_rss(), limit)


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
