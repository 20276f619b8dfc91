"""Memory reader: cgroup v2 and v1 files (written to a temp dir), and the process-tree RSS fallback."""

from __future__ import annotations

from worker.memory import memory_reader, process_tree_rss, read_cgroup_v1, read_cgroup_v2


def test_cgroup_v2_working_set_excludes_inactive_file_cache(tmp_path):
    (tmp_path / "memory.current").write_text("700000000\n")
    (tmp_path / "memory.max").write_text("1000000000\n")
    (tmp_path / "memory.stat").write_text("anon 500000000\ninactive_file 200000000\nactive_file 1\n")
    reading = read_cgroup_v2(tmp_path)
    assert (reading.used_bytes, reading.limit_bytes) == (500_000_000, 1_000_000_000)
    assert reading.fraction == 0.5


def test_cgroup_v2_without_a_limit_is_not_usable(tmp_path):
    (tmp_path / "memory.current").write_text("1\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert read_cgroup_v2(tmp_path) is None
    assert read_cgroup_v2(tmp_path / "missing") is None


def test_cgroup_v1(tmp_path):
    (tmp_path / "memory.usage_in_bytes").write_text("300\n")
    (tmp_path / "memory.limit_in_bytes").write_text("1000\n")
    (tmp_path / "memory.stat").write_text("cache 10\ntotal_inactive_file 100\n")
    assert read_cgroup_v1(tmp_path).used_bytes == 200
    (tmp_path / "memory.limit_in_bytes").write_text(str(2**63 - 4096))  # v1's "unlimited"
    assert read_cgroup_v1(tmp_path) is None


def test_explicit_limit_measures_process_tree_rss():
    reading = memory_reader(limit_override=600 * 1024 * 1024)()
    assert reading.limit_bytes == 600 * 1024 * 1024
    assert reading.used_bytes > 10 * 1024 * 1024  # a Python process with boto3 loaded


def test_rss_grows_with_allocation():
    before = process_tree_rss()
    block = b"x" * (64 * 1024 * 1024)
    assert process_tree_rss() - before > 48 * 1024 * 1024
    del block
