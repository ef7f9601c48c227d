"""`threads` is bounded by the machine (issue 20 #7: `threads: 1024`, inside the old range, hung the node under an
address-space limit): at most THREADS_PER_CPU x the CPUs this process may run on, refused with the reason; and a
thread pool the process cannot start is refused before torch's OpenMP ends the process for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, tree_env

from fast_scnn_core import cli
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer import options
from fast_scnn_core.infer.options import MAX_THREADS, THREADS_PER_CPU, InferenceConfig, option_help, thread_limit


@pytest.fixture
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options.os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)


def test_threads_are_bounded_by_the_cpus_available_to_the_process(two_cpus: None) -> None:
    assert thread_limit() == 2 * THREADS_PER_CPU == 8
    assert InferenceConfig(threads=8).threads == 8
    with pytest.raises(ConfigError, match=r"threads 9 is more than 4x the 2 CPU\(s\) available to this process: "):
        InferenceConfig(threads=9)
    with pytest.raises(ConfigError, match=r"expected 1\.\.8, or 0 = the library's default"):
        InferenceConfig(threads=1024)
    assert "at most 4x the CPUs available to the process" in option_help("threads")


def test_the_bound_never_exceeds_what_torch_survives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options.os, "sched_getaffinity", lambda pid: set(range(1000)), raising=False)
    assert thread_limit() == MAX_THREADS


def test_the_cli_flag_is_refused_with_the_reason(two_cpus: None, tmp_path: Path, capsys) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"")  # never read: the flag is refused first
    argv = ["predict", str(image), "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path), "--threads", "16"]
    assert cli.main(argv) == 2
    assert "fast-scnn predict: error: threads 16 is more than 4x the 2 CPU(s)" in capsys.readouterr().err


@pytest.mark.cli
def test_a_thread_pool_the_process_cannot_start_is_refused() -> None:
    """Under an address-space limit (1.5 GB over what the process maps): a pool of 512 is refused naming how many
    threads could start, 4 still start, and the check leaves none of its threads behind."""
    script = """
import os, resource, threading
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer.options import check_threads_start
mapped = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (mapped + 1_500_000_000, resource.RLIM_INFINITY))
try:
    check_threads_start(512)
except ConfigError as exc:
    print(exc)
check_threads_start(4)
print("threads left:", threading.active_count())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], env=tree_env(), capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    refusal, left = result.stdout.splitlines()
    assert refusal.startswith("threads 512: the engine's thread pools need 1024 threads, this process could start only")
    assert "lower threads, or 0 = the library's default" in refusal
    assert left == "threads left: 1"
