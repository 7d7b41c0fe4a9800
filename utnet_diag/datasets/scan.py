"""``scan``: every per-sample check over every frame of a dataset, findings streamed to JSONL.

Work is cut into chunks of consecutive samples; a chunk is read and checked in one place (the
main process, a DataLoader worker, or a torchrun rank) and only its findings travel back, so
workers add throughput without copying annotations between processes. Findings are ordered by
sample index then check, which makes a sharded scan identical to a single-process one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.datasets.batch import chunk_to_batch
from utnet_diag.datasets.checks import (
    ANNOTATED,
    DATASET_CHECKS,
    NOT_APPLICABLE,
    evaluated_counts,
    finding_sort_key,
    run_array_checks,
)
from utnet_diag.datasets.common import DatasetReader, Finding
from utnet_diag.datasets.distributed import gather_sinks
from utnet_diag.datasets.sink import FindingSink
from utnet_diag.errors import InputError
from utnet_diag.pictures.gallery import check_gallery_dir, write_gallery
from utnet_diag.report.result import CheckResult, Report, Status
from utnet_diag.report.sections import ScanSection, pictures_section

DEFAULT_CHUNK = 512
DEFAULT_MAX_FINDINGS = 1000
REAPER_THREAD = "utnet-diag-scan-reaper"  # the daemon thread that waits for exiting workers
FIRST_IDS = 5

ProgressFn = Callable[[int, int], None]


@dataclass
class ChunkResult:
    """What scanning one chunk yields: how many samples it covered and their findings."""

    samples: int
    findings: list[Finding]
    evaluated: dict[str, int] = field(default_factory=dict)  # per array check: samples judged


class ChunkScanner:
    """Reads and checks chunks of sample indices; a map-style dataset for DataLoader workers."""

    def __init__(
        self,
        reader: DatasetReader,
        chunks: Sequence[Sequence[int]],
        images: bool,
        batch_checks: bool = False,
    ):
        self.reader = reader
        self.chunks = chunks
        self.images = images
        self.batch_checks = batch_checks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> ChunkResult:
        return scan_chunk(self.reader, self.chunks[k], self.images, self.batch_checks)


def scan_chunk(
    reader: DatasetReader,
    indices: Sequence[int],
    images: bool,
    batch_checks: bool = False,
    fast: bool = True,
) -> ChunkResult:
    """Read ``indices`` and run every per-sample check; findings sorted by sample, then check.

    ``batch_checks`` also runs check-batch's checks (``BATCH_CHECKS``, ``CONVENTION_CHECKS``) on
    the chunk as one batch, and re-runs each that does not pass on every sample alone to name
    the samples (torch; slower than the array checks). Without images, a reader with a
    ``read_annotations`` fast path is read through it (identical findings); ``fast=False``
    forces the per-sample ``read`` + ``canonical`` path.
    """
    if fast and not images and hasattr(reader, "read_annotations"):
        findings, chunk = reader.read_annotations(indices)
    else:
        records = [reader.read(i, images) for i in indices]
        findings = [p for r in records for p in r.problems]
        chunk = reader.canonical(records)
    findings += run_array_checks(chunk, images)
    evaluated = evaluated_counts(chunk, images)
    if batch_checks and len(chunk):
        findings += registry_findings(chunk, images)
    findings.sort(key=finding_sort_key)
    return ChunkResult(len(indices), findings, evaluated)


def registry_findings(chunk: Any, images: bool) -> list[Finding]:
    """check-batch's checks over a chunk, attributed to samples: a check that warns or fails on
    the chunk is re-run on each sample alone; a sample on which it does not pass is a finding
    ``batch:<id>``. A chunk-level result no single sample reproduces is attributed to the chunk's
    first sample with a message saying so."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.checks.batch import BATCH_CHECKS
    from utnet_diag.checks.conventions import CONVENTION_CHECKS
    from utnet_diag.io.batch import Batch

    specs = BATCH_CHECKS.specs + CONVENTION_CHECKS.specs
    batch = chunk_to_batch(chunk, images)
    bad = {"fail", "warn"}
    results = run_checks(specs, CheckContext(batch=batch))
    findings: list[Finding] = []
    for result in results:
        if result.status.value not in bad:
            continue
        spec = next(s for s in specs if s.id == result.id)
        hits = 0
        for row, record in enumerate(chunk.records):
            one = Batch(
                {k: v[row : row + 1] for k, v in batch.tensors.items()},
                [record.sample_id], batch.source, format=batch.format,
            )  # fmt: skip
            (alone,) = run_checks([spec], CheckContext(batch=one))
            if alone.status.value in bad:
                hits += 1
                findings.append(
                    Finding(record.index, record.sample_id, record.main_path,
                            f"batch:{result.id}", alone.status.value, alone.message, alone.value)
                )  # fmt: skip
        if not hits:
            first = chunk.records[0]
            findings.append(
                Finding(first.index, first.sample_id, first.main_path, f"batch:{result.id}",
                        result.status.value,
                        f"on the chunk of {len(chunk)} samples from here (no single sample "
                        f"alone): {result.message}", result.value)
            )  # fmt: skip
    return findings


def make_chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive runs of ``size`` indices."""
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


def _identity(item: Any) -> Any:
    return item


def iterate_chunks(scanner: ChunkScanner, workers: int) -> Iterator[ChunkResult]:
    """Chunk results in order, in this process (``workers=0``) or from ``workers`` worker
    processes: forked on Linux (:func:`fork_chunks`), DataLoader workers elsewhere."""
    if workers <= 0:
        for k in range(len(scanner)):
            yield scanner[k]
        return
    if sys.platform.startswith("linux") and hasattr(os, "fork"):
        yield from fork_chunks(scanner, workers)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        scanner,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_identity,
        prefetch_factor=4,
        persistent_workers=False,
    )
    yield from loader


def fork_chunks(scanner: ChunkScanner, workers: int) -> Iterator[ChunkResult]:
    """Chunk results in order from ``workers`` forked processes (POSIX ``fork``).

    Workers take the next unscanned chunk from a shared counter (a worker the machine holds back
    leaves its share to the others) and send each result (sample count and the few findings),
    length-prefixed, through their own pipe; results are yielded in chunk order, so findings
    stream and progress advances as with one process. Forking costs about a millisecond (no
    interpreter start, no torch import, nothing sent to a worker; 3-5 ms from a process that has
    imported torch): that is what lets two workers beat one process on a few thousand frames.
    Each worker freezes the objects it inherits (``gc.freeze``), so that its collections never
    walk them: a full collection over a torch-sized heap would copy it page by page and cost
    ~100 ms. The scan returns when every worker has closed its pipe (after its last look at the
    shared counter); workers still exiting then are waited for by a daemon thread (tearing down
    a torch-sized process takes milliseconds). Workers ignore Ctrl-C; on interruption or failure
    they are killed and waited for. A worker that fails raises RuntimeError here.
    """
    import multiprocessing
    import pickle
    import selectors
    import signal

    count = len(scanner)
    workers = max(1, min(workers, count))
    next_chunk = multiprocessing.get_context("fork").Value("q", 0)
    procs: list[tuple[int, int]] = []  # (pid, read end of its pipe)
    finished = False
    selector = selectors.DefaultSelector()
    try:
        for _ in range(workers):
            pid, read_fd = _start_worker(scanner, next_chunk, count, [fd for _, fd in procs])
            procs.append((pid, read_fd))
            selector.register(read_fd, selectors.EVENT_READ)
        arrived: dict[int, ChunkResult] = {}
        for k in range(count):
            while k not in arrived:
                if not selector.get_map():
                    raise RuntimeError("scan workers exited without sending every chunk")
                for key, _ in selector.select():
                    message = _receive(key.fd)
                    if message is None:  # that worker is done
                        selector.unregister(key.fd)
                        continue
                    # only what our own forked worker pickled travels on this pipe
                    chunk_id, ok, payload = pickle.loads(message)
                    if not ok:
                        raise RuntimeError(f"scan worker failed on chunk {chunk_id}: {payload}")
                    arrived[chunk_id] = payload
            yield arrived.pop(k)
        # Every chunk is in; wait for each worker to close its pipe, which it does after its last
        # look at the shared counter: a later scan may get the same shared memory for its own.
        while selector.get_map():
            for key, _ in selector.select():
                if _receive(key.fd) is None:
                    selector.unregister(key.fd)
        finished = True
    finally:
        selector.close()
        exiting = []
        for pid, fd in procs:
            os.close(fd)
            if not finished:  # interrupted or failed: stop the workers still scanning
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            elif os.waitpid(pid, os.WNOHANG)[0] == 0:
                exiting.append(pid)
        if exiting:  # done, but still exiting (unmapping a large heap takes milliseconds)
            _reap_later(exiting)


def _start_worker(
    scanner: ChunkScanner, next_chunk: Any, count: int, parent_fds: list[int]
) -> tuple[int, int]:
    """Fork one worker (it scans until the shared counter passes ``count`` and never returns);
    the parent gets (its pid, the read end of its pipe). The worker closes ``parent_fds``, the
    pipes of the workers started before it."""
    import gc
    import signal
    import warnings

    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():  # Python >= 3.12 warns when threads exist
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the worker: never returns
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            gc.freeze()  # collections here never walk (and so copy) the parent's objects
            for fd in [read_fd, *parent_fds]:
                os.close(fd)
            _worker(scanner, next_chunk, count, write_fd)
            code = 0
        finally:
            os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
    os.close(write_fd)
    return pid, read_fd


def _reap_later(pids: list[int]) -> None:
    """Wait for worker processes that sent everything but have not finished exiting, in a
    daemon thread, so that the scan returns without waiting for the kernel to tear them down."""
    import threading

    def reap() -> None:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    threading.Thread(target=reap, name=REAPER_THREAD, daemon=True).start()


def _worker(scanner: ChunkScanner, next_chunk: Any, count: int, write_fd: int) -> None:
    """Scan chunks taken from the shared counter ``next_chunk`` until ``count``; send
    ``(chunk, True, ChunkResult)`` per chunk, or ``(chunk, False, traceback text)`` and stop."""
    import pickle
    import traceback

    with os.fdopen(write_fd, "wb") as pipe:
        while True:
            with next_chunk.get_lock():
                k = next_chunk.value
                next_chunk.value = k + 1
            if k >= count:
                return
            try:
                message: tuple[int, bool, Any] = (k, True, scanner[k])
            except Exception:
                message = (k, False, traceback.format_exc(limit=5)[-2000:])
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            pipe.write(len(data).to_bytes(8, "little") + data)
            pipe.flush()
            if not message[1]:
                return


def _receive(fd: int) -> bytes | None:
    """One length-prefixed message from a worker's pipe; None at its end."""
    first = os.read(fd, 8)
    if not first:
        return None
    header = first + _read_exactly(fd, 8 - len(first))
    return _read_exactly(fd, int.from_bytes(header, "little"))


def _read_exactly(fd: int, size: int) -> bytes:
    parts = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            raise RuntimeError("a scan worker exited in the middle of sending a result")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def scan_dataset(
    reader: DatasetReader,
    *,
    images: bool = False,
    workers: int = 0,
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    max_findings_per_check: int = DEFAULT_MAX_FINDINGS,
    chunk_size: int = DEFAULT_CHUNK,
    progress: ProgressFn | None = None,
    dist: Any = None,
    batch_checks: bool = False,
    gallery: str | os.PathLike | None = None,
) -> Report:
    """Scan every sample of ``reader`` (the first ``limit``) and return a Report (command "scan").

    ``images`` decodes RGB and depth (otherwise only annotations are read); ``workers`` is the
    number of DataLoader worker processes; ``out`` receives one JSON line per finding (at most
    ``max_findings_per_check`` per check; the rest are counted); ``progress(done, total)`` is
    called after each chunk; ``dist`` is a :class:`utnet_diag.datasets.distributed.DistContext`
    to shard over torchrun ranks; ``batch_checks`` adds check-batch's checks per chunk with
    per-sample attribution (findings ``batch:<check id>``); ``gallery`` (a folder): a sheet of
    each check's worst frames and an ``index.html`` (:mod:`utnet_diag.pictures.gallery`).
    Ctrl-C stops the scan: the findings so far are kept and the report says "interrupted
    after N of M samples".
    """
    if max_findings_per_check < 1:
        raise InputError("--max-findings-per-check must be at least 1")
    if workers < 0:
        raise InputError("--workers must be 0 or more")
    if gallery is not None:
        check_gallery_dir(gallery)
    total = len(reader) if limit is None else min(limit, len(reader))
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    mine = range(rank, total, world)
    scanner = ChunkScanner(reader, make_chunks(mine, chunk_size), images, batch_checks)
    writes = rank == 0 and out is not None
    # Sharded runs merge before writing; a single process streams as it goes.
    sink = FindingSink(max_findings_per_check, str(out) if writes and world == 1 else None)
    for finding in getattr(reader, "index_findings", []) if rank == 0 else []:
        sink.add(finding)
    start = time.perf_counter()
    done = 0
    interrupted = False
    results = iterate_chunks(scanner, workers)
    try:
        with _sigterm_stops_the_scan():
            for result in results:
                for finding in result.findings:
                    sink.add(finding)
                sink.add_evaluated(result.evaluated)
                done += result.samples
                if progress is not None:
                    progress(done * world if world > 1 else done, total)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        sink.close()
        raise
    finally:
        results.close()  # stops worker processes now, not when garbage collected
    elapsed = time.perf_counter() - start
    if world > 1:
        merged, done, interrupted = gather_sinks(dist, sink, done, interrupted)
        sink = merged
        if writes:
            _write_all(sink, str(out))
    else:
        sink.close()
    report = _report(
        reader, sink, total, done, interrupted, elapsed, images, workers, world, out,
        max_findings_per_check, batch_checks,
    )  # fmt: skip
    if gallery is not None and rank == 0:
        record = write_gallery(gallery, reader, sink.kept, report.checks, report.sections["scan"])
        report.sections.update(pictures_section(record))
    return report


@contextlib.contextmanager
def _sigterm_stops_the_scan() -> Iterator[None]:
    """While the scan runs, SIGTERM (``kill``, a job scheduler's stop) ends it as Ctrl-C does:
    the findings so far are kept and written, and the report says it was interrupted."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_all(sink: FindingSink, out: str) -> None:
    """Write a merged sink's kept findings in order (partial file, then rename)."""
    writer = FindingSink(sink.cap, out)
    ordered = sorted((f for kept in sink.kept.values() for f in kept), key=finding_sort_key)
    for finding in ordered:
        writer.add(finding)
    writer.close()
    sink.written = writer.written


def _report(
    reader: DatasetReader,
    sink: FindingSink,
    total: int,
    done: int,
    interrupted: bool,
    elapsed: float,
    images: bool,
    workers: int,
    world: int,
    out: Any,
    cap: int,
    batch_checks: bool = False,
) -> Report:
    skipped_here = NOT_APPLICABLE.get(reader.name, set())
    checks: list[CheckResult] = []
    by_check: dict[str, Any] = {}
    for check in DATASET_CHECKS:
        if check.id in skipped_here:
            continue
        counts = sink.counts.get(check.id, {})
        kept = sink.kept.get(check.id, [])
        n = sum(counts.values())
        first = [f.sample_id for f in kept[:FIRST_IDS]]
        if n:
            by_check[check.id] = {
                "count": n,
                "by_severity": dict(counts),
                "suppressed": max(0, n - len(kept)),
                "first_ids": first,
            }
        evaluated = _evaluated(check, sink, done)
        read = sink.evaluated.get(ANNOTATED, 0) if check.rows is not None else None
        checks.append(_check_result(check.id, counts, kept, done, images, evaluated, read))
    unknown = sorted(set(sink.counts) - {c.id for c in DATASET_CHECKS})
    for check_id in unknown:  # findings from checks outside the table (kept, never dropped)
        counts = sink.counts[check_id]
        by_check[check_id] = {"count": sum(counts.values()), "by_severity": dict(counts)}
    status_line = (
        f"interrupted after {done} of {total} samples" if interrupted else f"{done} samples"
    )
    section = ScanSection(
        **reader.describe(),
        samples_total=total,
        samples_scanned=done,
        interrupted=interrupted,
        status=status_line,
        images=images,
        workers=workers,
        world_size=world,
        elapsed_s=round(elapsed, 3),
        samples_per_s=round(done / elapsed, 1) if elapsed > 0 else None,
        findings_total=sum(sum(c.values()) for c in sink.counts.values()),
        findings_written=sink.written if out is not None else 0,
        max_findings_per_check=cap,
        out=str(out) if out is not None else None,
        notes=list(getattr(reader, "notes", [])),
        by_check=by_check,
        batch_checks=batch_checks,
    )
    return Report("scan", checks, {"scan": section})


def _evaluated(check: Any, sink: FindingSink, done: int) -> int:
    """How many scanned samples ``check`` judged: an array check counts the samples it could
    use; a reader check every sample not stopped before it by a ``prior`` reader check."""
    if check.rows is not None:
        return sink.evaluated.get(check.id, 0)
    stopped = sum(sum(sink.counts.get(p, {}).values()) for p in check.prior)
    return max(done - stopped, 0)


def _check_result(
    check_id: str,
    counts: dict[str, int],
    kept: list[Finding],
    done: int,
    images: bool,
    evaluated: int | None = None,
    annotated: int | None = None,
) -> CheckResult:
    """The check's verdict over the scan: its findings over the samples it judged; a check that
    judged no sample is a skip that says why, never a pass."""
    spec = DATASET_CHECKS.get(check_id)
    n = sum(counts.values())
    evaluated = done if evaluated is None else evaluated
    if spec.needs_images and not images:
        return CheckResult(
            check_id, Status.SKIP, "images not decoded (--no-images)", family="dataset"
        )
    if n == 0 and evaluated == 0:
        why = f"no sample has {spec.needs}" if spec.needs else "no sample reached it"
        if annotated == 0:
            why = "no annotated sample was read (see the file checks above)"
        if spec.prior:
            why = f"every sample stopped before it ({', '.join(spec.prior)})"
        return CheckResult(
            check_id, Status.SKIP, f"not evaluated: {why} (0 of {done} samples)",
            family="dataset", details={"evaluated": 0, "scanned": done},
        )  # fmt: skip
    left_out = (
        f"; {done - evaluated} without {spec.needs or 'it'} left out" if evaluated < done else ""
    )
    if n == 0:
        return CheckResult(
            check_id, Status.PASS, f"{spec.description}: all {evaluated} samples{left_out}", 0,
            family="dataset", details={"evaluated": evaluated, "scanned": done},
        )  # fmt: skip
    first = kept[0] if kept else None
    where = f"; first {first.sample_id}: {first.message}" if first is not None else ""
    if counts.get("fail"):
        status = Status.FAIL
    elif counts.get("warn"):
        status = Status.WARN
    else:
        status = Status.PASS
    message = f"{n}/{evaluated} samples{where}"
    suppressed = n - len(kept)
    if suppressed > 0:
        message += f" ({suppressed} more not listed: --max-findings-per-check)"
    return CheckResult(
        check_id,
        status,
        message,
        value=n,
        threshold=0,
        hint=spec.hint if status is not Status.PASS else None,
        family="dataset",
        details={
            "first_ids": [f.sample_id for f in kept[:FIRST_IDS]],
            "by_severity": counts,
            "evaluated": evaluated,
            "scanned": done,
        },  # fmt: skip
    )
