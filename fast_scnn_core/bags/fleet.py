"""A fleet's recordings: `label-bag` or `bag-to-dataset` over many bags at once, resumable (`fast-scnn label-bags`).

Each input bag is one job whose output goes to `DIR/<the bag's name>`, built by the one-bag library
(`label_bag`, `bag_to_dataset`) exactly as the one-bag commands build it: in `OUT.partial/` and renamed
when complete. That rename is the whole bookkeeping of a resumable run: a bag whose OUT exists is
finished and is not redone (unless --overwrite), a leftover `OUT.partial` (an interrupted or killed
attempt) is deleted and the bag done again from its start. A bag is one unit of work: long bags are
not split by time range (docs/benchmarks.md has the scaling model that says when that would pay).

Jobs run in local worker processes (`run_local`: spawned processes, each with its share of the CPU
threads, each loading the engine once for all its bags) or as Ray tasks (`run_ray`, on a local Ray
instance or an existing cluster; `ray` is imported only there). Either way the checkpoint file is read
once, here, and its bytes shipped to the workers (Ray's object store: `ray.put` once, every task gets
the same object). A worker process that dies (killed, out of memory, node lost) costs its bag an
attempt: the bag is redone up to `retries` more times, then reported failed; the others go on. An
error of the bag itself (damaged, no such topic) fails that bag at once, with its reason: redoing it
would fail the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, ClassVar

from tqdm import tqdm

from fast_scnn_core.atomic import atomic_write_text, partial_path
from fast_scnn_core.bags.io import BagError, Progress, open_bag, resolve_image_topics
from fast_scnn_core.bags.label import LabelOptions, label_bag
from fast_scnn_core.bags.to_dataset import ExtractOptions, bag_to_dataset
from fast_scnn_core.errors import ConfigError, FastSCNNError
from fast_scnn_core.infer.options import available_cpus
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import mask_class_ids
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint, load_checkpoint_bytes

BAG_SUFFIXES = (".mcap", ".db3")
# Attempts after the first for a bag whose worker process died (the --retries default).
RETRIES = 2
# CPU threads per Ray task when --threads is not given (Ray reserves as many CPUs for it).
RAY_TASK_THREADS = 2
# Test hook, a real process death: FAST_SCNN_FLEET_TEST_KILL=<bag name>:<marker file> makes the worker that
# labels that bag kill itself (SIGKILL) after its first frames, once (the marker file records that it did).
KILL_HOOK = "FAST_SCNN_FLEET_TEST_KILL"


@dataclass(frozen=True)
class BagJob:
    """One input bag and the output it gets under DIR."""

    source: Path
    out: Path


@dataclass
class BagResult:
    """What became of one bag (a row of the JSON summary)."""

    bag: str
    out: str
    status: str  # done | exists (finished by an earlier run) | failed | interrupted | not started
    frames: int = 0  # frames labelled (label-bags) or written (bags-to-dataset); an existing OUT: the bag's frames
    skipped: int = 0  # bad messages skipped (copied unchanged, not labelled)
    seconds: float = 0.0
    attempts: int = 0
    reason: str = ""


@dataclass
class LabelWork:
    """`label_bag` on each bag, with one set of options and engine."""

    options: LabelOptions
    engine: InferenceConfig
    command: ClassVar[str] = "label-bags"

    def check(self, payload: dict) -> None:
        """Refuse, before any bag, what would fail every bag: --masks the checkpoint's classes do not have."""
        try:
            mask_class_ids(class_set_of(payload), [n.strip() for n in self.options.masks if n.strip()])
        except ValueError as exc:
            raise ConfigError(f"--masks: {exc}") from None

    def run(self, job: BagJob, load: Callable[[], Segmenter], progress: Progress) -> tuple[int, int]:
        report = label_bag(job.source, job.out, load, self.options, self.engine.checkpoint, progress)
        return sum(report.labelled.values()), report.skips.total


@dataclass
class DatasetWork:
    """`bag_to_dataset` on each bag; `engine` None: no --checkpoint, images only."""

    options: ExtractOptions
    engine: InferenceConfig | None
    command: ClassVar[str] = "bags-to-dataset"

    def check(self, payload: dict) -> None:
        pass

    def run(self, job: BagJob, load: Callable[[], Segmenter], progress: Progress) -> tuple[int, int]:
        report = bag_to_dataset(job.source, job.out, self.options, load if self.engine else None, progress)
        return sum(report.counts.values()), report.skips.total


Work = LabelWork | DatasetWork


@dataclass
class FleetConfig:
    """How to run the jobs: the flags `fast-scnn label-bags` adds to the one-bag command's."""

    inputs: list[Path]
    out: Path
    ray: str | None = None  # None: local worker processes; "": a local Ray instance; else a cluster's address
    workers: int = 0  # local worker processes; 0: one per two CPUs, at most one per bag
    retries: int = RETRIES


# ---------------------------------------------------------------------------------------------
# Planning: which bags, where their outputs go


def is_bag(path: Path) -> bool:
    """A rosbag2 directory (it has metadata.yaml) or a bare .mcap/.db3 file."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or (path.is_file() and path.suffix in BAG_SUFFIXES)


def find_bags(inputs: list[Path]) -> list[Path]:
    """The bags IN... name: bags themselves, and the bags directly inside a folder that is not one."""
    bags: list[Path] = []
    for path in inputs:
        if is_bag(path):
            bags.append(path)
        elif path.is_dir():
            found = sorted(child for child in path.iterdir() if is_bag(child))
            if not found:
                raise FastSCNNError(f"{path} holds no bag (a directory with metadata.yaml, or a .mcap/.db3 file)")
            bags.extend(found)
        elif path.exists():
            raise FastSCNNError(f"{path} is not a bag: expected a bag directory, a .mcap/.db3 file or a folder of bags")
        else:
            raise FastSCNNError(f"{path}: no such bag or folder")
    return bags


def output_name(bag: Path) -> str:
    """The name of a bag's output under DIR: the bag directory's name, or the file's name without .mcap/.db3."""
    return bag.stem if bag.is_file() else bag.name


def plan_jobs(inputs: list[Path], out: Path) -> list[BagJob]:
    """One job per bag, its output `out/<name>`; refuses two bags of one name and `out` inside an input folder."""
    for path in inputs:
        if path.is_dir() and not is_bag(path) and path.resolve() in (out.resolve(), *out.resolve().parents):
            raise FastSCNNError(
                f"--out {out} is inside the input folder {path}: a re-run would take the outputs for recordings; "
                "write them somewhere else"
            )
    by_name: dict[str, list[Path]] = {}
    for bag in find_bags(inputs):
        by_name.setdefault(output_name(bag), []).append(bag)
    clashes = [f"{', '.join(map(str, bags))} -> {out / name}" for name, bags in by_name.items() if len(bags) > 1]
    if clashes:
        raise FastSCNNError(
            f"bags with the same name would write the same output: {'; '.join(clashes)}; rename them, or run them "
            "with different --out"
        )
    # absolute: a Ray worker on another node runs in another directory (--out is a path every node mounts)
    return [BagJob(bags[0].absolute(), out.absolute() / name) for name, bags in by_name.items()]


def count_frames(bag: Path, topics: list[str]) -> int:
    """Camera frames of `topics` in `bag` (from its index, nothing decoded); 0 when it does not open or lacks one."""
    try:
        with open_bag(bag) as reader:
            return sum(reader.topics[topic].msgcount for topic in resolve_image_topics(reader, bag, topics))
    except BagError:  # the bag's own task fails with the reason
        return 0


# ---------------------------------------------------------------------------------------------
# One bag, in whichever worker runs it

_ENGINES: dict[tuple[str, str], Segmenter] = {}  # this process's engine, built once for all its bags


def engine_loader(checkpoint: bytes | None, engine: InferenceConfig | None) -> Callable[[], Segmenter]:
    """The Segmenter of the shipped checkpoint bytes and `engine`, built at the first bag a process labels."""

    def load() -> Segmenter:
        assert checkpoint is not None and engine is not None
        key = (hashlib.sha256(checkpoint).hexdigest(), repr(engine))
        if key not in _ENGINES:
            _ENGINES.clear()
            _ENGINES[key] = Segmenter.from_payload(load_checkpoint_bytes(checkpoint, engine.checkpoint), engine)
        return _ENGINES[key]

    return load


def kill_hook(job: BagJob, progress: Progress) -> Progress:
    """`progress`, or with KILL_HOOK naming this bag, `progress` that kills this process once after the first frames."""
    name, _, marker = os.environ.get(KILL_HOOK, "").partition(":")
    if name != job.source.name or not marker:
        return progress

    def report(frames: int) -> None:
        progress(frames)
        if not os.path.exists(marker):
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return report


def process_bag(job: BagJob, work: Work, checkpoint: bytes | None, progress: Progress) -> BagResult:
    """One bag from its start (a leftover OUT.partial is deleted); an error of the bag is the result's reason."""
    started = time.monotonic()
    result = BagResult(str(job.source), str(job.out), "done")
    if job.out.exists() and not work.options.overwrite:  # a retry of an attempt that died after the rename
        result.status = "exists"
        return result
    leftover = partial_path(job.out).parent
    if leftover.exists():  # an interrupted or killed attempt's: redone from scratch
        shutil.rmtree(leftover)
    load = engine_loader(checkpoint, work.engine)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a worker's messages (skipped frames) stay off the JSON summary
            result.frames, result.skipped = work.run(job, load, kill_hook(job, progress))
    except FastSCNNError as exc:
        result.status, result.reason = "failed", str(exc)
    except Exception as exc:  # a fault of this bag only (a bug, an unexpected library error): the others go on
        result.status, result.reason = "failed", f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.monotonic() - started, 3)
    return result


# ---------------------------------------------------------------------------------------------
# Progress: one bar over every bag


class FleetProgress:
    """Frames done per bag into one tqdm bar (frames/s, ETA); a bag redone after a worker died starts again at 0."""

    def __init__(self, total: int, command: str) -> None:
        self.bar = tqdm(total=total, desc=command, unit="frame", mininterval=0.5, dynamic_ncols=True)
        self.done: dict[str, int] = {}

    def add(self, bag: str, frames: int) -> None:
        self.done[bag] = self.done.get(bag, 0) + frames
        self.bar.update(frames)

    def set(self, bag: str, frames: int) -> None:
        self.add(bag, frames - self.done.get(bag, 0))

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------------------------
# Local worker processes


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def worker_main(conn: Connection, work: Work, checkpoint: bytes | None) -> None:
    """A local worker process: bags from `conn` one at a time until None; progress and results back through it.

    Ctrl-C in a terminal reaches the whole process group: workers ignore SIGINT, and the parent stops them
    with SIGTERM, which ends a bag as Ctrl-C ends label-bag (its OUT.partial closed and marked incomplete).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    job = None
    try:
        while (job := conn.recv()) is not None:
            result = process_bag(job, work, checkpoint, lambda frames: conn.send(("progress", frames)))
            conn.send(("result", result))
    except KeyboardInterrupt:
        if job is not None:
            conn.send(("result", BagResult(str(job.source), str(job.out), "interrupted", reason="interrupted")))
    except EOFError:  # the parent is gone
        pass


class LocalWorker:
    """One spawned worker process and the bag it is on."""

    def __init__(self, work: Work, checkpoint: bytes | None) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: torch's and ONNX Runtime's threads
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child, work, checkpoint), daemon=True)
        self.process.start()
        child.close()
        self.job: BagJob | None = None

    def give(self, job: BagJob) -> None:
        self.job = job
        self.conn.send(job)

    def receive(self, progress: FleetProgress) -> BagResult | None:
        """Read what the worker sent: progress into the bar; its result when it finished its bag."""
        while self.conn.poll():
            try:
                kind, value = self.conn.recv()
            except (EOFError, OSError):  # it died; the caller sees the process gone
                return None
            if kind == "progress":
                assert self.job is not None
                progress.add(str(self.job.source), value)
            else:
                self.job = None
                return value
        return None

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


class LocalPool:
    """Runs jobs on `workers` local processes, redoing a bag whose process died up to `retries` more times."""

    def __init__(self, work: Work, checkpoint: bytes | None, workers: int, retries: int) -> None:
        self.work, self.checkpoint, self.retries = work, checkpoint, retries
        self.workers = [LocalWorker(work, checkpoint) for _ in range(workers)]
        self.attempts: dict[BagJob, int] = {}
        self.results: dict[BagJob, BagResult] = {}

    def run(self, jobs: list[BagJob], progress: FleetProgress) -> dict[BagJob, BagResult]:
        queue = deque(jobs)
        while len(self.results) < len(jobs):
            for i, worker in enumerate(self.workers):
                if worker.job is None and queue and not worker.process.is_alive():  # died between bags
                    self.workers[i] = worker = LocalWorker(self.work, self.checkpoint)
                if worker.job is None and queue:
                    self.attempts[queue[0]] = self.attempts.get(queue[0], 0) + 1
                    worker.give(queue.popleft())
            busy = [w for w in self.workers if w.job is not None]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
            for i, worker in enumerate(self.workers):
                job = worker.job
                result = worker.receive(progress)
                if result is not None and job is not None:
                    result.attempts = self.attempts[job]
                    self.results[job] = result
                elif job is not None and not worker.process.is_alive():
                    self.lost(job, worker.process.exitcode, queue, progress)
                    self.workers[i] = LocalWorker(self.work, self.checkpoint)
        return self.results

    def lost(self, job: BagJob, exitcode: int | None, queue: deque[BagJob], progress: FleetProgress) -> None:
        """A worker died on `job`: redo it from the start (first in line), or report it failed."""
        progress.set(str(job.source), 0)
        death = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit status {exitcode}"
        tqdm.write(f"fast-scnn {self.work.command}: the worker labelling {job.source} died ({death})")
        if self.attempts[job] <= self.retries:
            queue.appendleft(job)
            return
        reason = f"its worker process died in each of {self.attempts[job]} attempts (last: {death})"
        attempts = self.attempts[job]
        self.results[job] = BagResult(str(job.source), str(job.out), "failed", attempts=attempts, reason=reason)

    def interrupt(self, progress: FleetProgress) -> None:
        """Ctrl-C: stop every worker's bag (its OUT.partial closed and marked) and collect what they report."""
        for worker in self.workers:
            if worker.job is not None and worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + 60
        for worker in self.workers:
            job = worker.job
            while job is not None and time.monotonic() < deadline:
                alive = worker.process.is_alive()  # before reading: a dead worker's last words are read below
                wait([worker.conn, worker.process.sentinel], timeout=1.0)
                result = worker.receive(progress)
                if result is not None:
                    result.attempts = self.attempts[job]
                    self.results[job] = result
                if result is not None or not alive:
                    break

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


def run_local(
    jobs: list[BagJob], work: Work, checkpoint: bytes | None, config: FleetConfig, progress: FleetProgress
) -> tuple[dict[BagJob, BagResult], bool]:
    """({job: result}, interrupted) of the jobs on local worker processes."""
    pool = LocalPool(work, checkpoint, local_workers(config, len(jobs)), config.retries)
    try:
        return pool.run(jobs, progress), False
    except KeyboardInterrupt:
        pool.interrupt(progress)
        return pool.results, True
    finally:
        pool.close()


def local_workers(config: FleetConfig, jobs: int) -> int:
    """--workers, by default one per two CPUs (each with two threads); never more than the bags."""
    return max(1, min(jobs, config.workers or available_cpus() // 2))


# ---------------------------------------------------------------------------------------------
# Ray


class ProgressCounter:
    """A Ray actor: frames done and attempts made per bag, as the tasks report them (a new attempt counts from 0)."""

    def __init__(self) -> None:
        self.attempts: dict[str, dict[str, int]] = {}  # bag -> {attempt: frames}, in the order they started

    def add(self, bag: str, attempt: str, frames: int) -> None:
        # a dead attempt's last report may arrive after the next attempt's first: it counts for its own attempt
        attempts = self.attempts.setdefault(bag, {})
        attempts[attempt] = attempts.get(attempt, 0) + frames

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """({bag: frames done by its latest attempt}, {bag: attempts started})."""
        frames = {bag: list(attempts.values())[-1] for bag, attempts in self.attempts.items()}
        return frames, {bag: len(attempts) for bag, attempts in self.attempts.items()}


def ray_task(job: BagJob, work: Work, checkpoint: bytes | None, counter: Any) -> BagResult:
    """One bag as a Ray task (`checkpoint`: the object store's bytes, resolved by Ray before the call)."""
    attempt = uuid.uuid4().hex

    def report(frames: int) -> None:
        counter.add.remote(str(job.source), attempt, frames)

    report(0)  # this attempt has started (calls from one task reach the actor in order)
    return process_bag(job, work, checkpoint, report)


def task_resources(ray: Any, work: Work) -> tuple[dict[str, Any], Work]:
    """(Ray resources per task, `work` with as many engine threads as CPUs reserved): one GPU per task when the
    cluster has GPUs and --device allows CUDA, else --threads CPUs (RAY_TASK_THREADS by default)."""
    engine = work.engine
    if engine is not None and engine.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0:
        return {"num_gpus": 1, "num_cpus": 1}, work
    if engine is None:
        return {"num_cpus": 1}, work
    threads = engine.threads or RAY_TASK_THREADS
    return {"num_cpus": threads}, dataclasses.replace(work, engine=dataclasses.replace(engine, threads=threads))


def run_ray(
    jobs: list[BagJob], work: Work, checkpoint: bytes | None, config: FleetConfig, progress: FleetProgress
) -> tuple[dict[BagJob, BagResult], bool]:
    """({job: result}, interrupted) of the jobs as Ray tasks, on the cluster at --ray's address or a local instance."""
    try:
        import ray  # only here: `fast-scnn --help` and local runs never load Ray
    except ImportError:
        raise FastSCNNError(
            "--ray needs Ray on this machine and every node: pip install 'fast-scnn-ros[ray]'"
        ) from None

    with ray_session(ray, config.ray):
        env = {KILL_HOOK: os.environ[KILL_HOOK]} if KILL_HOOK in os.environ else {}
        resources, work = task_resources(ray, work)
        remote = ray.remote(ray_task).options(
            max_retries=config.retries,  # a dead worker or lost node; an error of the bag is a result, not retried
            retry_exceptions=False,
            runtime_env={"env_vars": env} if env else None,
            **resources,
        )
        shipped = ray.put(checkpoint)  # once: every task gets this object, none reads the file
        counter = ray.remote(num_cpus=0)(ProgressCounter).remote()
        refs = {remote.remote(job, work, shipped, counter): job for job in jobs}
        results: dict[BagJob, BagResult] = {}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
                frames, attempts = ray.get(counter.snapshot.remote())
                for bag, done in frames.items():
                    progress.set(bag, done)
                for ref in ready:
                    results[refs[ref]] = ray_result(ray, ref, refs[ref], config.retries)
                    results[refs[ref]].attempts = attempts.get(str(refs[ref].source), 1)
            return results, False
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # KeyboardInterrupt in the task: label-bag closes and marks its OUT.partial
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=60)
            for ref in ready:
                results[refs[ref]] = ray_result(ray, ref, refs[ref], config.retries)
            return results, True


@contextlib.contextmanager
def ray_session(ray: Any, address: str | None) -> Iterator[None]:
    """Ray as this process finds it (already initialised, e.g. by a test), else connected to `address` or started."""
    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, configure_logging=False)
        else:  # a local instance for this run: no dashboard (seconds of start-up and a port)
            ray.init(include_dashboard=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise FastSCNNError(f"--ray {address or ''}: cannot start or reach Ray: {exc}".replace("  ", " ")) from None
    try:
        yield
    finally:
        ray.shutdown()


def ray_result(ray: Any, ref: Any, job: BagJob, retries: int) -> BagResult:
    """The task's BagResult; its death after the retries, or its cancellation, as a result."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return BagResult(str(job.source), str(job.out), "interrupted", reason="interrupted")
    except ray.exceptions.RayError as exc:  # WorkerCrashedError, NodeDiedError, OutOfMemoryError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"its Ray task failed in each of {retries + 1} attempts ({type(exc).__name__}: {first})"
        return BagResult(str(job.source), str(job.out), "failed", attempts=retries + 1, reason=reason)


# ---------------------------------------------------------------------------------------------
# The run


def read_checkpoint(work: Work) -> bytes | None:
    """The checkpoint file's bytes, read and validated once (a bad checkpoint stops the run before any bag)."""
    if work.engine is None:
        return None
    path = Path(work.engine.checkpoint)
    work.check(load_checkpoint(path))
    return path.read_bytes()


def with_threads(work: Work, config: FleetConfig, jobs: int) -> Work:
    """`work` whose engine has each local worker's share of the CPUs as threads, unless --threads says."""
    engine = work.engine
    if engine is None or engine.threads or config.ray is not None:
        return work
    threads = max(1, available_cpus() // local_workers(config, jobs))
    return dataclasses.replace(work, engine=dataclasses.replace(engine, threads=threads))


def run_fleet(config: FleetConfig, work: Work) -> int:
    """Every bag of `config.inputs` into `config.out`; prints and writes the JSON summary; the exit status.

    0: every bag complete; 1: complete, some bad messages skipped; 2: a bag failed (the others are complete);
    130: interrupted (finished bags kept; the unfinished ones' OUT.partial marked incomplete).
    """
    started = time.monotonic()
    jobs = plan_jobs(config.inputs, config.out)
    checkpoint = read_checkpoint(work)
    frames = {job: count_frames(job.source, work.options.topics) for job in jobs}
    finished = {job for job in jobs if job.out.exists() and not work.options.overwrite}
    results = {job: BagResult(str(job.source), str(job.out), "exists", frames[job]) for job in finished}
    todo = [job for job in jobs if job not in finished]
    interrupted = False
    if todo:
        config.out.mkdir(parents=True, exist_ok=True)
        work = with_threads(work, config, len(todo))
        progress = FleetProgress(sum(frames[job] for job in todo), work.command)
        runner = run_local if config.ray is None else run_ray
        try:
            done, interrupted = runner(todo, work, checkpoint, config, progress)
        finally:
            progress.close()
        results.update(done)
    rows = [results.get(job) or BagResult(str(job.source), str(job.out), "not started") for job in jobs]
    return report(config.out, work.command, rows, time.monotonic() - started, interrupted)


def report(out: Path, command: str, rows: list[BagResult], seconds: float, interrupted: bool) -> int:
    """Write `out/<command>.json` (atomically) and print it; failures and the next step on stderr; the exit status."""
    done = sum(r.frames for r in rows if r.status == "done")
    summary = {
        "command": command,
        "out": str(out),
        "seconds": round(seconds, 3),
        "frames": done,
        "frames_per_second": round(done / max(seconds, 1e-9), 2),
        "bags": [dataclasses.asdict(r) for r in rows],
    }
    text = json.dumps(summary, indent=2) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{command}.json", text)
    print(text, end="")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        if row.status == "failed":
            print(f"fast-scnn {command}: {row.bag} failed: {row.reason}", file=sys.stderr)
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"fast-scnn {command}: {len(rows)} bags: {tally} ({out / f'{command}.json'})", file=sys.stderr)
    if interrupted:
        print(
            f"fast-scnn {command}: interrupted; finished outputs are kept, each unfinished bag's OUT.partial is "
            "marked incomplete: run the same command again to do only those",
            file=sys.stderr,
        )
        return 130
    if counts.get("failed"):
        return 2
    return 1 if any(r.skipped for r in rows) else 0
