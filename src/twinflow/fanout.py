"""Work shared among processes: `verify` and `rebuild` read and decode every stored event, and
`import` reads, checks and builds every row of a file; one Python process does that at a
fraction of what the machine can. The caller does the first part itself; each other part runs
in a process of its own (a new interpreter: no connection or lock is inherited) that opens
the register itself and sends back what it found through a pipe; the caller combines the
parts in order, so the result is the one a single process gives (tested).

TWINFLOW_WORKERS sets how many processes share the work, the caller's included (1: all in
this one); by default one per core, up to MOST (a caller may ask for fewer), for at least
MIN_EVENTS events or rows (below that, starting processes costs more)."""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from importlib import import_module
from typing import TYPE_CHECKING, Any, NamedTuple

from twinflow.errors import InvalidInput, StorageError, TwinflowError

if TYPE_CHECKING:
    from twinflow.storage import Location

MIN_EVENTS = 20_000
MOST = 4
ENDING = 5.0  # seconds a worker that sent its last item has to exit by itself
HELD = 4  # items a process may send ahead of its caller
Emit = Callable[[Any], None]


def workers(events: int, most: int = MOST) -> int:
    """How many processes to share `events` events among: TWINFLOW_WORKERS, else one per
    core up to `most`."""
    configured = os.environ.get("TWINFLOW_WORKERS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise InvalidInput(
                f"TWINFLOW_WORKERS={configured!r} is not a number of processes: "
                "give 1 or more, or unset it for one per core"
            )
        return int(configured)
    if events < MIN_EVENTS:
        return 1
    return max(1, min(os.cpu_count() or 1, most))


def ranges(recorder: Any, parts: int) -> list[tuple[int, int, int]]:
    """The log cut into `parts` runs of nearly equal length: (after id, up to id, position of
    the run's first record), positions counted from 1 in log order."""
    from twinflow.logread import sql  # not at the top: --help never needs it

    cuts: list[int] = []
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(sql(recorder, "SELECT COUNT(*) AS n, MAX({position}) AS last FROM {table}"))
        row = cursor.fetchone()
        total, last = int(row["n"] or 0), int(row["last"] or 0)
        parts = max(1, min(parts, total))  # never more runs than records
        nth = sql(
            recorder, "SELECT {position} AS id FROM {table} ORDER BY {position} LIMIT 1 OFFSET ?"
        )
        for k in range(1, parts):
            cursor.execute(nth, (k * total // parts - 1,))
            found = cursor.fetchone()
            cuts.append(int(found["id"]) if found else last)
    bounds = [0, *cuts, last]
    return [
        (bounds[k], bounds[k + 1], k * total // parts + 1)
        for k in range(parts)
        if bounds[k + 1] > bounds[k]
    ]


class Started(NamedTuple):
    """A worker process, and the file where it says why it failed."""

    process: subprocess.Popen[bytes]
    said: Any


def _start(files: ExitStack) -> Started:
    """A worker process: it loads twinflow, then waits for its part on stdin (serve)."""
    said = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - files closes it
    process = subprocess.Popen(
        [sys.executable, "-c", "from twinflow.fanout import serve; serve()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=said,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
    )
    files.callback(_close, process)
    return Started(process, said)


@contextmanager
def ahead(count: int) -> Iterator[list[Started]]:
    """`count` worker processes started now, for `run(..., started=)` to give parts to
    later: a process takes a fifth of a second to load twinflow, which then overlaps the
    caller's own work. A run gives back those that did their part, for the next run to
    give parts to first (they have loaded what such parts need). On leaving, all are told
    that no part will come (their stdin closed) and end by themselves."""
    with ExitStack() as files:
        started = [_start(files) for _ in range(count)]
        every = [s.process for s in started]
        try:
            yield started
        finally:
            for process in every:
                _close(process)
            _stop(every, ended=True)


def dismiss(started: list[Started]) -> None:
    """Tell the processes started ahead and not busy that no part will come, for them to
    end now, while the caller goes on (`ahead` waits for them on leaving)."""
    for process, _ in started:
        _close(process)
    started.clear()


def run(
    location: Location,
    task: str,
    parts: list[Any],
    progress: Callable[[int], None] | None = None,
    *,
    here: Callable[[Any, Callable[[int], None]], None] | None = None,
    started: list[Started] | None = None,
    doing: str = "reading the log",
) -> Iterator[tuple[int, Any]]:
    """Run `task` ("module:function", called as function(register, part, emit, progress))
    on each part in a process of its own; yields (part index, item) for every item the parts
    emit, part after part, each part's items in the order it sent them. With `here`, this
    process does the first part itself, here(part, progress), while the others run, so it
    uses its core instead of waiting. A part's failure is raised here, the others stopped.

    A process waits once it has sent a few items its caller has not taken yet, so nothing
    piles up in memory. The processes are fresh interpreters (`python -c`), not
    multiprocessing's: those import the caller's main module again, which a script using
    the Python API need not guard. Processes started `ahead` are given parts first (each is
    taken from `started`), then new ones are started. `doing` names the work in the error
    of a worker that stops."""
    first = 1 if here is not None and parts else 0
    ticks: queue.SimpleQueue[int] = queue.SimpleQueue()  # progress the processes report
    failed: list[BaseException] = []
    ended = False  # every part sent all it had
    workers: list[tuple[subprocess.Popen[bytes], threading.Thread, queue.Queue[Any]]] = []

    def told(done: int = 0) -> None:
        """Pass on progress (this process's `done`, and the others'), in this thread."""
        with suppress(queue.Empty):
            while True:
                done += ticks.get_nowait()
        if done and progress:
            progress(done)
        if failed:
            raise failed[0]

    borrowed: list[Started] = []  # from `started`: given back when done, for another run
    with ExitStack() as files:
        try:
            for part in parts[first:]:
                if started:
                    process, said = started.pop(0)
                    borrowed.append(Started(process, said))
                    lent = True
                else:
                    process, said = _start(files)
                    lent = False
                assert process.stdin is not None
                try:
                    pickle.dump((location, task, part), process.stdin)
                    process.stdin.flush()
                    if not lent:
                        process.stdin.close()  # its only part: it ends once done
                except OSError:  # it ended before it got its part (its exit is waited for)
                    raise _stopped(process, said, doing) from None
                box: queue.Queue[Any] = queue.Queue(maxsize=HELD)
                reader = threading.Thread(
                    target=_relay, args=(process, said, box, ticks, failed, doing), daemon=True
                )
                reader.start()
                workers.append((process, reader, box))
            if here is not None and first:
                here(parts[0], told)
            for index, (_, _, box) in enumerate(workers, start=first):
                while True:
                    try:
                        kind, payload = box.get(timeout=0.1)
                    except queue.Empty:
                        told()
                        continue
                    if kind == "item":
                        yield index, payload
                    elif kind == "error":
                        raise payload
                    else:
                        break
            told()
            ended = True
            if started is not None:  # loaded and warm: the next run gives them parts first
                started[:0] = borrowed
        finally:
            back = {s.process for s in borrowed} if ended else set()
            _stop([process for process, _, _ in workers if process not in back], ended)
            for _, reader, box in workers:  # each ends with its worker; its box must not hold it
                while reader.is_alive():
                    with suppress(queue.Empty):
                        while True:
                            box.get_nowait()
                    reader.join(0.05)


def results(
    location: Location,
    task: str,
    parts: list[Any],
    progress: Callable[[int], None] | None,
    *,
    here: Callable[[Any, Callable[[int], None]], Any],
    started: list[Started] | None = None,
    doing: str = "reading the log",
) -> list[Any]:
    """`run` for tasks whose parts each send one item, their result: the results in the
    parts' order, this process's (the first part's) what `here` returns."""
    found: list[Any] = [None] * len(parts)

    def mine(part: Any, told: Callable[[int], None]) -> None:
        found[0] = here(part, told)

    for index, item in run(
        location, task, parts, progress, here=mine, started=started, doing=doing
    ):
        found[index] = item
    return found


def _stop(processes: list[subprocess.Popen[bytes]], ended: bool) -> None:
    """Workers that sent all they had (`ended`) are let exit by themselves, for as long as
    it takes an interpreter to end (ENDING, for all of them together); the others are
    stopped now: another part failed, or the caller stopped taking items. Whatever
    interrupts the wait (a signal), every worker is still stopped and reaped."""
    try:
        if ended:
            deadline = time.monotonic() + ENDING
            for process in processes:
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def _close(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):  # stdin is open yet if it got no part
        if pipe is not None:
            with suppress(OSError):  # a part still unsent to a process that died: no matter
                pipe.close()


def _relay(
    process: subprocess.Popen[bytes],
    said: Any,
    box: queue.Queue[Any],
    ticks: queue.SimpleQueue[int],
    failed: list[BaseException],
    doing: str,
) -> None:
    """Pass on what one worker sends, then how it ended."""
    assert process.stdout is not None
    try:
        while True:
            kind, payload = pickle.load(process.stdout)
            if kind == "progress":
                ticks.put(payload)
                continue
            if kind == "error":
                failed.append(payload)
            box.put((kind, payload))
            if kind in ("done", "error"):
                return
    except Exception:  # the channel ended or was garbled: how the worker ended says why
        failure = _stopped(process, said, doing)
        failed.append(failure)
        box.put(("error", failure))


def _stopped(process: subprocess.Popen[bytes], said: Any, doing: str) -> StorageError:
    """The error of a worker that ended without a word: its last line, or its exit code."""
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # still running, but what it sends makes no sense
        process.kill()
        code = process.wait()
    said.seek(0)
    lines = [line for line in said.read().decode(errors="replace").splitlines() if line]
    why = lines[-1] if lines else f"exit code {code}"
    return StorageError(
        f"a worker process stopped while {doing} ({why}); run the command again, or with "
        "TWINFLOW_WORKERS=1"
    )


def serve() -> None:
    """A worker: read (location, task, part) from stdin, send what it finds on stdout; then
    the next, until stdin ends (a process started ahead may be given several in turn)."""
    from twinflow.application import Register

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the channel

    def send(kind: str, payload: Any) -> None:
        pickle.dump((kind, payload), out)
        out.flush()

    while True:
        try:
            try:
                location, task, part = pickle.load(sys.stdin.buffer)
            except EOFError:  # no (more) parts: started ahead and not needed, or done
                return
            module, name = task.split(":")
            function = getattr(import_module(module), name)
            register = Register(location, create=False, unguarded_ok=True)
            try:
                function(
                    register,
                    part,
                    lambda item: send("item", item),
                    lambda done: send("progress", done),
                )
            finally:
                register.close()
            send("done", None)
        except BaseException as error:  # reported to the caller, which raises it
            send("error", _sendable(error))
            return


def _sendable(error: BaseException) -> BaseException:
    """The error itself where it survives the queue, else one that says what it was."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        text = str(error).strip() or type(error).__name__
        return StorageError(text) if not isinstance(error, TwinflowError) else TwinflowError(text)
    return error
