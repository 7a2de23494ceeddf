"""Chapters on Dask: ``--jobs N`` (a local ``distributed.LocalCluster``) or ``--scheduler ADDRESS``.

Each chapter is one task, ``job.execute``: it runs the chapter in a child process on the worker and
returns the executed notebook as bytes with its record, so workers need no shared filesystem; the
client checks the cache before submitting and stores the results as they come (``execute.finish``:
atomic, the previous notebook kept on failure). A chapter that fails is reported and not retried;
a task whose worker dies is retried once (the scheduler's ``allowed-failures`` = 1), then reported;
chapters still waiting when no worker has been left for ``NO_WORKERS_TIMEOUT`` are reported as not
run (the scheduler's ``no-workers-timeout``), instead of the client waiting for ever.
Workers whose Python, packages, moebook or moe_lib differ from the client's are refused.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid

from . import job, store
from .errors import UsageError
from .execute import Plan, Result, cached, finish, make_job, report
from .job import execute, fingerprint, fingerprint_differences

ALLOWED_FAILURES = 1  # a task whose worker dies is run once more, then reported
CONNECT_TIMEOUT = "15s"
# Longer than a nanny takes to restart a dead worker (seconds) and than a stalled VM (a minute);
# a cluster with no worker for this long is not coming back by itself.
NO_WORKERS_TIMEOUT = "10m"


class Cluster:
    """A connected Dask client (and the local cluster it owns, if any); a context manager."""

    def __init__(self, client, local=None, note: str = ""):
        self.client, self.local, self.note = client, local, note
        self.fingerprint = fingerprint()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.client.close()
        finally:
            if self.local is not None:
                self.local.close()


# A chapter runs for hours while its worker only waits on a subprocess; a machine that stalls for a
# minute under load (seen on a 2-core VM: "workqueue lockup ... stuck for 59s") must not make the
# workers drop their scheduler connection (the default 30 s TCP timeout did, killing every running
# chapter). A worker that is killed still closes its sockets at once, so the retry stays prompt.
PATIENCE = {"distributed.comm.timeouts.connect": "120s", "distributed.comm.timeouts.tcp": "900s",
            "distributed.scheduler.worker-ttl": "30 minutes"}


def connect(jobs: int | None, scheduler: str | None) -> Cluster:
    try:
        import dask
        import distributed
    except ImportError as e:
        raise UsageError(f"--jobs and --scheduler need dask and distributed ({e}); "
                         "install them from requirements.lock") from None
    dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                     "distributed.scheduler.no-workers-timeout": NO_WORKERS_TIMEOUT, **PATIENCE})
    if jobs is not None:
        local = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=":0", memory_limit=0,
                                         silence_logs=logging.ERROR)
        cluster = Cluster(distributed.Client(local), local)
    else:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler!r}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        try:
            client.wait_for_workers(1, timeout=30)
        except (TimeoutError, OSError):
            client.close()
            raise UsageError(f"the Dask scheduler at {scheduler} has no workers; start one with "
                             f"'dask worker {scheduler} --nthreads 1'") from None
        cluster = Cluster(client, note=_scheduler_notes(client))
    _refuse_other_versions(cluster)
    return cluster


def _scheduler_settings(dask_scheduler=None):
    return (getattr(dask_scheduler, "allowed_failures", None),
            getattr(dask_scheduler, "no_workers_timeout", None))


def _scheduler_notes(client) -> str:
    """Advice on a remote scheduler whose settings differ from what a local cluster gets."""
    try:
        failures, no_workers = client.run_on_scheduler(_scheduler_settings)
    except Exception:  # noqa: BLE001 - the scheduler may not import moebook; the notes are optional
        return ""
    notes = []
    if failures is not None and failures != ALLOWED_FAILURES:
        notes.append(f"note: this scheduler reruns a task whose worker died {failures} times; start it "
                     f"with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES={ALLOWED_FAILURES} for one retry")
    if no_workers is None:
        notes.append("note: this scheduler keeps chapters waiting for ever when no worker is left; "
                     f"start it with DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT={NO_WORKERS_TIMEOUT} "
                     "to have them reported")
    return "\n".join(notes)


def _refuse_other_versions(cluster: Cluster) -> None:
    try:
        theirs = cluster.client.run(job.fingerprint)
    except Exception as e:  # noqa: BLE001 - e.g. a worker that cannot import moebook
        cluster.__exit__(None, None, None)
        raise UsageError(f"a Dask worker cannot run moebook ({type(e).__name__}: {e}); install the "
                         "project and requirements.lock there") from None
    for worker, fp in sorted(theirs.items()):
        diff = fingerprint_differences(cluster.fingerprint, fp)
        if diff:
            cluster.__exit__(None, None, None)
            raise UsageError(f"Dask worker {worker} has other versions than the client, refusing it: "
                             + "; ".join(diff[:6]) + ("; ..." if len(diff) > 6 else "")
                             + "; install requirements.lock and this checkout there")


class Counter:
    """The live 'done / running / failed / waiting' line on the terminal."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.failed = total, 0, 0
        self.running: set[str] = set()
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.lock = threading.RLock()

    def line(self) -> str:
        waiting = self.total - self.done - len(self.running)
        return (f"  [done {self.done} / running {len(self.running)} / failed {self.failed} / "
                f"waiting {max(waiting, 0)}]")

    def show(self, message: str = "") -> None:
        with self.lock:
            if self.tty:
                self.stream.write("\r\033[K")
            if message:
                self.stream.write(message + "\n")
            self.stream.write(self.line() + ("" if self.tty else "\n"))
            self.stream.flush()

    def event(self, event) -> None:
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(msg, dict) and msg.get("state") == "running":
            with self.lock:
                if msg.get("chapter") not in self.running:
                    self.running.add(msg.get("chapter"))
                    self.show()

    def finished(self, chapter_id: str, failed: bool) -> None:
        with self.lock:
            self.running.discard(chapter_id)
            self.done += 1
            self.failed += failed

    def close(self) -> None:
        if self.tty:
            with self.lock:
                self.stream.write("\n")
                self.stream.flush()


def submission_order(pending: list) -> list:
    """(index, plan, note) triples in the order to submit them, so that long chapters do not start
    last: chapters without a recorded run time first, in their order (an interrupted run leaves the
    long ones unrecorded), then the others by their last recorded time, longest first (a stale
    record still tells how long the chapter took)."""
    def key(t):
        s = store.seconds(t[1].entry)
        return (s > 0, -s)
    return sorted(pending, key=key)


def _duration(t: float) -> str:
    return f"{t / 60:g} min" if t >= 60 else f"{t:g} s"


def run_cluster(plans: list[Plan], profile: str, force: bool, timeout: float,
                cluster: Cluster) -> list[Result]:
    from distributed import KilledWorker, as_completed
    from distributed.scheduler import NoWorkerError

    if cluster.note:
        print(cluster.note, flush=True)
    client = cluster.client
    results: dict[int, Result] = {}
    pending = []
    for i, p in enumerate(plans):
        r, note = cached(p, force)
        if r is not None:
            print(f"{p.chapter.id} ({p.chapter.label}):", flush=True)
            report(r, p.custom)
            results[i] = r
        else:
            pending.append((i, p, note))
    pending = submission_order(pending)
    counter = Counter(len(pending))
    futures = {}
    run_id = uuid.uuid4().hex[:8]
    try:
        client.subscribe_topic("moebook", counter.event)
        for i, p, note in pending:
            fut = client.submit(execute, make_job(p, timeout, cluster.fingerprint), pure=False, retries=0,
                                key=f"moebook-{p.chapter.id}-{run_id}")
            futures[fut] = (i, p, note)
        if pending:
            counter.show(f"submitted {len(pending)} chapter(s) to {len(client.scheduler_info()['workers'])} "
                         "worker(s)")
        for fut in as_completed(list(futures)):
            i, p, note = futures[fut]
            try:
                outcome = fut.result()
            except KilledWorker:
                outcome = {"status": "FAILED", "seconds": 0.0, "notebook": None,
                           "error": "the worker running it died, and again on the retry; not retried again"}
            except NoWorkerError as e:
                outcome = {"status": "FAILED", "seconds": 0.0, "notebook": None,
                           "error": f"not run: the cluster had no worker left for {_duration(e.timeout)}; "
                                    "start workers and rerun (finished chapters are cached)"}
            except Exception as e:  # noqa: BLE001 - reported as this chapter's failure
                outcome = {"status": "FAILED", "seconds": 0.0, "notebook": None,
                           "error": f"{type(e).__name__}: {e}"}
            r = finish(p, outcome, profile, note)
            results[i] = r
            counter.finished(p.chapter.id, r.status == "FAILED")
            with counter.lock:
                if counter.tty:
                    counter.stream.write("\r\033[K")
                print(f"{p.chapter.id} ({p.chapter.label}):", flush=True)
                report(r, p.custom)
                counter.show()
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        counter.close()
        try:
            client.unsubscribe_topic("moebook")
        except Exception:  # noqa: BLE001 - closing anyway
            pass
    return [results[i] for i in range(len(plans))]
