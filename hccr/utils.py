"""Small shared helpers: atomic writes, JSON files, progress bars, threads, printed counts."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    from .errors import HccrError

    path = Path(path)
    if path.is_dir():  # naming what the user gave, not the temporary name
        raise HccrError(f"{path}: is a folder; give a file name for this output")
    if path.parent.exists() and not path.parent.is_dir():
        raise HccrError(f"{path.parent}: is a file, not a folder; give another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    name = working_name(path, "tmp")
    remove_stale(path.parent, f"{name}-")
    tmp = path.with_name(f"{name}-{os.getpid()}")
    try:
        try:
            yield tmp
            if tmp.is_file():  # some writers (safetensors) create private files: give it the mode any new file gets
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except OSError as e:
            if e.errno is None or (e.filename is not None and str(e.filename) != str(tmp)):
                raise
            # the user gave `path`, not its temporary sibling (nor a nameless write to it): name theirs
            raise OSError(e.errno, e.strerror, str(path)) from None
        except HccrError:
            raise
        except Exception as e:  # a writer's own error over the system's (a full disk under torch or safetensors)
            code = _system_error(e)
            if code is None:
                raise
            raise OSError(code, os.strerror(code), str(path)) from e
    finally:
        if tmp.exists():
            tmp.unlink()


NAME_MAX = 255  # bytes in one file name on Linux's and macOS's file systems


def working_name(path: Path, tag: str) -> str:
    """A working file's name beside ``path``: ``.NAME.TAG`` (a writer adds ``-PID`` and, for a model's files, a
    suffix). A name near the system's limit (255 bytes) keeps its first bytes and a digest of the whole, so that an
    output whose own name is legal never fails for its working file's."""
    name = path.name
    if len(os.fsencode(name)) > NAME_MAX - 40:  # room for the tag, a process id and ".safetensors"
        import hashlib

        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
        name = f"{os.fsencode(name)[:160].decode('utf-8', 'ignore')}~{digest}"
    return f".{name}.{tag}"


STALE_AFTER_S = 60.0  # a working file is written to as it is made: one untouched this long has no writer


def remove_stale(folder: Path, prefix: str, rest: str = r"(\d{1,10})") -> None:
    """Remove working files that a process killed while writing left behind (``kill -9`` gives it no time to remove
    them): regular files named ``PREFIX`` + ``rest`` (a pattern whose first group is the writer's process id) whose
    process no longer runs and which have not changed for a minute (a writer on another machine sharing the folder
    keeps its file changing). Anything else with such a name (a user's file, a link, a folder) is left alone."""
    import glob
    import stat

    now = time.time()
    for f in folder.glob(glob.escape(prefix) + "*"):
        m = re.fullmatch(rest, f.name[len(prefix):])
        if m is None or int(m[1]) == os.getpid() or _running(int(m[1])):
            continue
        with contextlib.suppress(OSError):  # gone already, or not ours to remove: it does no harm
            st = f.lstat()
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_AFTER_S:
                f.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def write_together(contents: list[tuple[Path, bytes]]) -> None:
    """Files that only make sense together (a checkpoint's weights and the .json holding their digest; a model's two
    temperatures): each written whole under its working name, then all renamed into place one straight after the
    other (the last given first), Ctrl-C held back, so a failure or Ctrl-C never leaves one new beside one old."""
    with no_interrupt(), contextlib.ExitStack() as renames:
        for path, data in contents:
            renames.enter_context(atomic_path(path)).write_bytes(data)


def _system_error(e: BaseException) -> int | None:
    """The system's error code behind a writer's own exception: an OSError it was raised while handling (torch,
    writing to a file object) or one it quotes (safetensors: "... (os error 28)"); None if there is none."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    quoted = re.search(r"\(os error (\d+)\)", str(e))
    return int(quoted[1]) if quoted else None


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Hold an exclusive lock on ``out`` for the whole block: ``.<name>.lock`` beside it, locked
    with ``flock``. A second writer to the same output is refused at once, with the process that
    holds it (also when the two name it through different symlinks: the lock sits beside the real
    path); a lock left by a process that died is free again (the kernel drops it with the
    process), so it is simply taken over. Worker pools started inside the block must run
    :func:`worker_init` in each worker (``initargs=(os.getpid(),)``), or a forked worker outliving a killed parent keeps the lock."""
    import fcntl

    out = Path(out)
    real = Path(os.path.realpath(out))  # one lock per output, whatever symlinks lead to it
    real.parent.mkdir(parents=True, exist_ok=True)
    lock = real.parent / working_name(real, "lock")
    while True:
        f = open(lock, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            from .errors import HccrError

            raise HccrError(f"{out}: another hccr is writing this {what} (process {holder}, lock {lock}); wait for "
                            f"it to finish, or if no such process runs, delete {lock}") from None
        if _is_at(f, lock):  # the file a holder removed as it finished is no lock: open the one at the path now
            break
        f.close()
    _HELD_LOCKS.add(f.fileno())
    try:
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield lock
    finally:
        _HELD_LOCKS.discard(f.fileno())
        if _is_at(f, lock):  # removed while still held, so no one locks a file about to vanish; and only ours (a
            with contextlib.suppress(OSError):  # user may have deleted it, and another run made its own)
                lock.unlink()
        f.close()  # releases the lock


def _is_at(f, path: Path) -> bool:
    """Whether the open file ``f`` is the one at ``path`` now (not one removed or replaced since it was opened)."""
    try:
        return os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


_HELD_LOCKS: set[int] = set()  # descriptors of the output locks this process holds


def worker_init(parent: int) -> None:
    """Run first in each forked worker of a pool: the worker drops its inherited copies of the
    parent's output locks (a flock lives until every copy is closed), leaves Ctrl-C to its parent
    (no worker's traceback is printed) and, on Linux, is killed with its parent, so ``kill -9`` of
    a conversion frees its output at once for a resume."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the pool
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above: nothing to work for
            os._exit(1)


def process_pool(workers: int):
    """hccr's worker processes: forked where the platform can (the workers share what the parent has read), each
    run through :func:`worker_init`, so none holds an output lock or outlives a killed parent."""
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with no_interrupt():  # a worker forked now only notes Ctrl-C until worker_init has it ignored
        return ctx.Pool(workers, initializer=worker_init, initargs=(os.getpid(),))


@contextlib.contextmanager
def no_interrupt() -> Iterator[None]:
    """Ctrl-C held back for the block (delivered when it ends): for steps that must not be cut in two, such as the
    renames that put a model's files in place. The signal may reach any thread (torch runs several) and Python
    handles it in the main thread, so a handler notes it there and raises it again at the end (a process forked in
    the block starts with that handler). Only the main thread can hold it; elsewhere the block just runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        if held:
            signal.raise_signal(signal.SIGINT)


def count(n: int, one: str) -> str:
    """``1 sample``, ``2,000 samples``, ``3 classes``: a count as the commands print it."""
    return f"{n:,} {one if n == 1 else one + ('es' if one.endswith('s') else 's')}"


def json_text(obj: Any) -> str:
    """hccr's JSON files as written: indented, characters as themselves."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj), encoding="utf-8")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """A JSON file hccr wrote; one cut short or edited into invalid JSON is an error naming it."""
    from .errors import HccrError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise HccrError(f"{path}: damaged {what} (not valid JSON: {e}); remove it or write it again") from None


def use_all_cores() -> int:
    """Let torch use every core (the default on some builds is fewer); nothing to do without torch
    (ONNX Runtime uses every core by itself)."""
    n = os.cpu_count() or 1
    try:
        import torch
    except ImportError:
        return n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class Progress:
    """A minimal progress bar on stderr (rich when attached to a terminal, sparse lines otherwise).

    ``update(n, **stats)`` advances the bar and shows the latest stats (loss, acc, img/s ...).
    """

    def __init__(self, total: int | None, desc: str, disable: bool = False, unit: str = "it"):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.stats: dict[str, Any] = {}
        self.start = time.perf_counter()
        self._last_line = 0.0
        self._rich = None
        self.disable = disable
        if disable:
            return
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(desc, total=total, stats="")

    def _fmt(self) -> str:
        parts = []
        for k, v in self.stats.items():
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
        return "  ".join(parts)

    def update(self, n: int = 1, **stats: Any) -> None:
        self.n += n
        self.stats.update(stats)
        if self.disable:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=n, stats=self._fmt())
            return
        now = time.perf_counter()
        if now - self._last_line >= 10 or (self.total and self.n >= self.total):
            self._last_line = now
            of = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.n}{of} {self.unit} [{now - self.start:.0f}s] {self._fmt()}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
