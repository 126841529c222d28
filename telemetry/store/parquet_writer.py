"""The writing side of the embedded store (`telemetry.store.parquet`): its files on disk (atomic writes, footers,
what counts as a damaged file), the writer lock, the duplicate index, group commits and what the writer does
when it opens a store (recovery, clean-up, quarantine). `ParquetStore` is the one user of this module; the
guarantees are in docs/durability.md.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from telemetry.batch import Columns, group_frame
from telemetry.errors import StoreError, StoreLockedError
from telemetry.schema import RESERVED_MEASUREMENTS
from telemetry.store.base import BatchKey, fsync_dir

log = logging.getLogger("telemetry.store.parquet")

COVERS_KEY = "neighborscope.covers"
BATCHES_KEY = "neighborscope.batches"
GROUP_KEY = "neighborscope.group"
LOCK_FILE = "LOCK"
EMPTY_DIR = "_empty_batches"
QUARANTINE_DIR = "quarantine"
ARTIFACTS_DIR = "artifacts"
assert {QUARANTINE_DIR, ARTIFACTS_DIR} <= RESERVED_MEASUREMENTS  # no measurement may take their directories
#: a temp file of a live process older than this is a leftover (no Parquet file takes an hour to write)
STALE_TMP_S = 3600.0
_PROCESS_START = time.time()


# ---- files: atomic writes and their footers ---------------------------------------------------------


def _tmp_path(d: Path, suffix: str = ".parquet") -> Path:
    """A hidden temp name that says which process writes it (so a cleanup never takes a live writer's file)."""
    return d / f".tmp-{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def _write_tmp(
    frame: pl.DataFrame, d: Path, metadata: dict[str, str] | None, compression: str, row_group_size: int | None = None
) -> Path:
    """``frame`` as a fsynced temp file in ``d``; nothing is left behind when it fails."""
    tmp = _tmp_path(d)
    _write_file(frame, tmp, metadata, compression, row_group_size)
    return tmp


def _write_file(
    frame: pl.DataFrame,
    tmp: Path,
    metadata: dict[str, str] | None,
    compression: str,
    row_group_size: int | None = None,
) -> None:
    """``frame`` written to ``tmp`` and fsynced; nothing is left behind when it fails. Min/max statistics are
    written for every column of every row group (readers skip row groups by them); ``row_group_size`` in
    rows, polars' default when None."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        frame.write_parquet(
            tmp,
            compression=compression,  # type: ignore[arg-type]
            statistics=True,
            metadata=metadata,
            row_group_size=row_group_size,
        )
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(
    frame: pl.DataFrame,
    target: Path,
    metadata: dict[str, str] | None = None,
    sync_dir: bool = True,
    compression: str = "zstd",
    row_group_size: int | None = None,
) -> None:
    tmp = _write_tmp(frame, target.parent, metadata, compression, row_group_size)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(target.parent)


@dataclass(frozen=True)
class Footer:
    """What the store keeps in a file's Parquet metadata."""

    covers: frozenset[str]  # names of the files a compacted file replaces
    batches: frozenset[str]  # slugs of the agent batches the file holds
    group: tuple[str, ...] = ()  # a group commit's files: temp, final, temp, final, ... (paths under the root)


_FOOTERS: dict[tuple[str, int, int], Footer | str] = {}
_FOOTERS_LOCK = threading.Lock()


def read_footer(path: Path) -> Footer | str | None:
    """A file's footer (cached by path, size and mtime); the reason as a str when it cannot be read; None when
    the file is gone."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _FOOTERS_LOCK:
        hit = _FOOTERS.get(key)
    if hit is not None:
        return hit
    try:
        meta = pl.read_parquet_metadata(path)
        found: Footer | str = Footer(
            frozenset(json.loads(meta.get(COVERS_KEY, "[]"))),
            frozenset(json.loads(meta.get(BATCHES_KEY, "[]"))),
            tuple(str(x) for pair in json.loads(meta.get(GROUP_KEY, "[]")) for x in pair),
        )
    except READ_ERRORS as exc:
        if vanished(exc) or not path.exists():
            return None
        if not damaged(exc):
            raise StoreError(f"cannot read {path}: {exc}") from None
        found = unreadable_reason(exc, st.st_size)
    _remember(key, found)
    return found


#: what reading a Parquet file raises (a panic of the Rust reader included)
READ_ERRORS = (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException, ValueError, TypeError)


def vanished(exc: BaseException) -> bool:
    """The file was deleted under the reader (compaction): list again."""
    return isinstance(exc, FileNotFoundError) or "No such file" in str(exc)


def damaged(exc: BaseException) -> bool:
    """The file's bytes are not valid Parquet (as opposed to the system failing to read them: too many open
    files, permissions, I/O errors, which are raised, never taken for a bad file)."""
    if isinstance(exc, OSError) or "os error" in str(exc).lower() or vanished(exc):
        return False
    return isinstance(exc, pl.exceptions.ComputeError | pl.exceptions.PanicException | ValueError | TypeError)


def _remember(key: tuple[str, int, int], found: Footer | str) -> None:
    with _FOOTERS_LOCK:
        if len(_FOOTERS) > 200_000:
            _FOOTERS.clear()
        _FOOTERS[key] = found


def mark_unreadable(path: Path, reason: str) -> None:
    """Remember that ``path`` (as it is now) cannot be read, found by a full read after its footer was fine."""
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
        _remember((str(path), st.st_size, st.st_mtime_ns), reason)


def unreadable_reason(exc: BaseException, size: int | None = None) -> str:
    if size == 0:
        return "empty file (0 bytes)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"not a readable Parquet file: {text[:300]}"


def covers_of(path: Path) -> frozenset[str]:
    found = read_footer(path)
    return found.covers if isinstance(found, Footer) else frozenset()


def batches_of(path: Path) -> frozenset[str]:
    found = read_footer(path)
    return found.batches if isinstance(found, Footer) else frozenset()


# ---- the duplicate index ----------------------------------------------------------------------------


class _KeyIndex:
    """The agent batches stored, per batch key: per (node, boot_id) the seqs as sorted ranges (an agent counts
    up, so a boot is a handful of ranges however many batches it sent)."""

    def __init__(self) -> None:
        self._starts: dict[str, list[int]] = {}
        self._ends: dict[str, list[int]] = {}
        self._odd: set[str] = set()  # a slug without a numeric seq (not written by this code)

    @staticmethod
    def _split(slug: str) -> tuple[str, int] | None:
        prefix, _, seq = slug.rpartition(".")
        try:
            return prefix, int(seq)
        except ValueError:
            return None

    def __contains__(self, slug: str) -> bool:
        parts = self._split(slug)
        if parts is None:
            return slug in self._odd
        starts = self._starts.get(parts[0])
        if not starts:
            return False
        i = bisect.bisect_right(starts, parts[1]) - 1
        return i >= 0 and parts[1] <= self._ends[parts[0]][i]

    def add(self, slug: str) -> None:
        parts = self._split(slug)
        if parts is None:
            self._odd.add(slug)
            return
        prefix, seq = parts
        starts = self._starts.setdefault(prefix, [])
        ends = self._ends.setdefault(prefix, [])
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and seq <= ends[i]:
            return
        joins_left = i >= 0 and ends[i] == seq - 1
        joins_right = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = seq
        elif joins_right:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)

    def update(self, slugs: Iterator[str] | Sequence[str] | frozenset[str] | set[str]) -> None:
        for slug in slugs:
            self.add(slug)


# ---- the writer: one process per store directory ----------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_tmp(path: Path, now: float) -> bool:
    """A temp file nobody will rename: its writer is gone (or it is older than any write takes)."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return False
    if now - mtime > STALE_TMP_S:
        return True
    head = path.name[len(".tmp-") :].split("-", 1)
    if len(head) == 2 and head[0].isdigit():
        pid = int(head[0])
        if pid == os.getpid():
            return mtime < _PROCESS_START  # a previous process that had our PID (a restarted container)
        return not _pid_alive(pid)
    return now - mtime > 60  # the old name (no PID): written by an older version, long gone


_SECRET_WORDS = ("token", "password", "passwd", "secret", "key", "auth", "cred")


def default_owner() -> str:
    """This process's command line, with the value of every option that looks secret (``--node-token``,
    ``--password``, ...) replaced by ``***``: the lock file is readable by other users."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    words = [Path(sys.argv[0]).name]
    hide_next = False
    for word in sys.argv[1:]:
        name, eq, _value = word.partition("=")
        secret = word.startswith("-") and any(w in name.lower() for w in _SECRET_WORDS)
        if hide_next:
            words.append("***")
        elif secret and eq:
            words.append(f"{name}=***")
        else:
            words.append(word)
        hide_next = secret and not eq
    return " ".join(words)[:300]


def _holder(fd: int) -> dict:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        found = json.loads(text)
        if isinstance(found, dict):
            return found
    return {}


def lock_store(root: Path, owner: str) -> int:
    """An exclusive ``flock`` on ``root/LOCK`` (held until the fd is closed or the process dies), which then
    names this process; `StoreLockedError` naming the holder when another process has it."""
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the store's lock file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
        who = f"PID {pid}" if pid is not None else "another process"
        if holder.get("host"):
            who += f" on {holder['host']}"
        owner_text = str(holder.get("owner") or "")
        if owner_text:
            who += f" ({owner_text})"
        if holder.get("since"):
            who += f", since {holder['since']}"
        raise StoreLockedError(
            f"store {root} is already being written by {who}; two writers on one store would store batches "
            "twice: stop that process, or give this one another --store (reading needs no lock)",
            pid,
            owner_text,
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(
            f"cannot lock the store {root} ({path}: {exc.strerror or exc}); use a local file system"
        ) from None
    describe_holder(fd, owner)
    return fd


def describe_holder(fd: int, owner: str) -> None:
    """Write who holds the lock into the lock file (the lock is what counts; the text helps the next one)."""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "owner": owner,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)


@dataclass
class Pending:
    key: BatchKey
    frames: dict[str, pl.DataFrame | Columns]
    new: bool = False
    done: bool = False
    error: BaseException | None = None


@dataclass
class _Unfinished:
    """A group commit being installed: (temp, final) per file, and the batch keys it holds."""

    moves: list[tuple[Path, Path]]
    slugs: list[str]


@dataclass
class _DirState:
    """One <measurement>/<day> directory as the writer finds it on opening."""

    entries: list[Path]
    covered: set[str]
    footers: dict[Path, Footer | str]

    @classmethod
    def read(cls, d: Path) -> _DirState:
        entries = parquet_files(d)
        footers: dict[Path, Footer | str] = {}
        for p in entries:
            found = read_footer(p)
            if found is not None:
                footers[p] = found
        covered: set[str] = set()
        for p, found in footers.items():
            if p.name.startswith("c-") and isinstance(found, Footer):
                covered |= found.covers
        return cls(entries, covered, footers)


def _in_place(final: Path, dirs: dict[Path, _DirState]) -> bool:
    """A group's file is in place, or was, and has been compacted since."""
    state = dirs.get(final.parent)
    return final.exists() or (state is not None and final.name in state.covered)


def _pairs(group: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(group[i], group[i + 1]) for i in range(0, len(group), 2)]


@dataclass
class Writer:
    """What the process holding a store's lock keeps: the lock, the duplicate index, the group-commit queue,
    the files due for deletion. One per store directory per process, shared by its `ParquetStore` handles."""

    root: Path
    fd: int
    refs: int = 0
    index: _KeyIndex = field(default_factory=_KeyIndex)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    commit_cv: threading.Condition = field(default_factory=threading.Condition)
    queue: list[Pending] = field(default_factory=list)
    committing: bool = False
    pending_delete: list[tuple[float, Path]] = field(default_factory=list)
    pending: _Unfinished | None = None  # a group whose renames or fsyncs failed: finished before the next one

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)

    # -- opening: recover, clean up, rebuild the index --------------------------------------------------

    def open(self, grace_s: float) -> None:
        """Make the store whole after whatever stopped the last writer: finish or undo interrupted group
        commits, delete temp files of dead writers, schedule the files compacted files cover for deletion,
        quarantine unreadable files, and load every stored batch key into the index."""
        dirs = {d: _DirState.read(d) for d in _data_dirs(self.root)}
        renamed = self._recover_groups(dirs)
        now = time.time()
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            if here == self.root:
                dirnames[:] = [n for n in dirnames if n != QUARANTINE_DIR]
            for name in filenames:
                if name.startswith(".tmp-") and here / name not in renamed and _stale_tmp(here / name, now):
                    (here / name).unlink(missing_ok=True)
        for name in listdir(self.root / EMPTY_DIR):
            if name.startswith("b-") and name.endswith(".parquet"):
                self.index.add(name[2:-8])
        due = time.monotonic() + grace_s
        for d in dirs:
            state = _DirState.read(d)  # again: recovery may have renamed files in or out
            for p in state.entries:
                if p.name in state.covered:
                    self.pending_delete.append((due, p))
                    continue
                found = state.footers.get(p) or read_footer(p)
                if isinstance(found, str):
                    self.quarantine(p, found)
                elif found is not None:
                    self.index.update(found.batches)
                    if p.name.startswith("b-"):
                        self.index.add(p.name[2:-8])

    def _recover_groups(self, dirs: dict[Path, _DirState]) -> set[Path]:
        """Every group commit that a stop interrupted between two renames (a file of it renamed in, another
        still under its temp name) is finished: all its temp files were fsynced before the first rename.
        A group none of whose files was renamed is left to the temp-file cleanup (never acknowledged, never
        visible). Nothing is ever deleted here: a file of a group that is neither in place nor a temp file was
        removed on purpose (retention, quarantine) or lost by the file system, and the rest of the group stays.
        Returns the temp files renamed in."""
        renamed: set[Path] = set()
        seen: set[tuple[str, ...]] = set()
        for state in dirs.values():
            for found in state.footers.values():
                if not isinstance(found, Footer) or not found.group or found.group in seen:
                    continue
                seen.add(found.group)
                moves = [(self.root / tmp, self.root / final) for tmp, final in _pairs(found.group)]
                unfinished = [(tmp, final) for tmp, final in moves if tmp.exists() and not _in_place(final, dirs)]
                if not unfinished:
                    continue
                missing = [f for t, f in moves if not t.exists() and not _in_place(f, dirs)]
                if missing:
                    names = ", ".join(str(f.relative_to(self.root)) for f in missing)
                    log.error(
                        "store %s: an interrupted group commit misses %s: its other files are kept", self.root, names
                    )
                for tmp, final in unfinished:
                    os.replace(tmp, final)
                    renamed.add(tmp)
                for parent in sorted({final.parent for _, final in unfinished}):
                    fsync_dir(parent)
                log.warning("store %s: finished an interrupted group commit (%d files)", self.root, len(moves))
        return renamed

    # -- committing a group ---------------------------------------------------------------------------

    def commit(self, group: list[Pending], split: Callable[..., list[tuple[str, pl.DataFrame | Columns]]]) -> None:
        """Store the new batches of ``group`` all-or-nothing; on return each is durable and in the index.

        Every file is written and fsynced under its temp name first (a failure, e.g. a full disk, leaves
        nothing behind); each file's metadata lists the whole group (temp and final names), so a writer that
        opens the store after a stop between two renames finishes them; then the files are renamed in, their
        directories fsynced, and only then do the batch keys enter the index."""
        if self.pending is not None:
            self._finish(self.pending)  # raises while it still cannot: nothing new is written meanwhile
        parts: dict[tuple[str, str], list[tuple[str, pl.DataFrame | Columns]]] = {}
        new: list[tuple[Pending, str]] = []
        seen: set[str] = set()
        for p in group:
            slug = p.key.slug()
            if slug in self.index or slug in seen:
                continue  # a replay: already stored (or twice in this group)
            seen.add(slug)
            new.append((p, slug))
            for measurement, frame in p.frames.items():
                for day, part in split(frame):
                    parts.setdefault((measurement, day), []).append((slug, part))
        moves = [
            (_tmp_path(self.root / m / day), self.root / m / day / f"g-{uuid.uuid4().hex}.parquet") for m, day in parts
        ]
        members = (
            json.dumps([[str(t.relative_to(self.root)), str(f.relative_to(self.root))] for t, f in moves])
            if len(moves) > 1
            else None
        )
        written: list[Path] = []
        try:
            for ((measurement, _day), items), (tmp, _final) in zip(parts.items(), moves, strict=True):
                meta = {BATCHES_KEY: json.dumps(sorted({slug for slug, _ in items}))}
                if members is not None:
                    meta[GROUP_KEY] = members
                frame = group_frame(measurement, [f for _, f in items])
                # lz4: cheaper to write; compaction rewrites the rows with zstd
                _write_file(frame, tmp, meta, "lz4")
                written.append(tmp)
        except BaseException:
            for tmp in written:
                tmp.unlink(missing_ok=True)
            raise
        with self.write_lock:
            self._finish(_Unfinished(moves, [slug for _, slug in new]))
        for p, _ in new:
            p.new = True

    def _finish(self, group: _Unfinished) -> None:
        """Rename a group's files in, fsync their directories, then index its batch keys. A failure before
        the first rename removes the temp files; after it, the group is kept as `pending` and finished first
        by the next commit (or by the next writer that opens the store)."""
        self.pending = None
        started = any(not tmp.exists() for tmp, _ in group.moves)
        try:
            for tmp, final in group.moves:
                if tmp.exists() or not started:
                    os.replace(tmp, final)
                    started = True
            for d in sorted({final.parent for _, final in group.moves}):
                fsync_dir(d)
        except BaseException:
            if started:
                self.pending = group
            else:
                for tmp, _ in group.moves:
                    tmp.unlink(missing_ok=True)
            raise
        self.index.update(group.slugs)

    # -- unreadable files ------------------------------------------------------------------------------

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move an unreadable file to ``quarantine/`` (kept, with a ``.reason`` beside it) and say so loudly."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return None
        dest = self.root / QUARANTINE_DIR / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            with contextlib.suppress(OSError):
                dest.with_name(dest.name + ".reason").write_text(
                    f"{datetime.now(UTC).isoformat(timespec='seconds')} {rel}: {reason}\n", encoding="utf-8"
                )
            fsync_dir(dest.parent)
            fsync_dir(path.parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("store %s: %s is unreadable (%s) and could not be quarantined: %s", self.root, rel, reason, exc)
            return None
        log.error(
            "store %s: %s is unreadable (%s): moved to %s. Its rows are missing from every read until it is "
            "repaired and moved back; new writes go on.",
            self.root, rel, reason, dest.relative_to(self.root),
        )  # fmt: skip
        print(f"neighborscope: store {self.root}: quarantined unreadable file {rel} ({reason})", file=sys.stderr)
        return dest

    def delete_due(self, force: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for due, p in self.pending_delete:
            if force or due <= now:
                p.unlink(missing_ok=True)
            else:
                keep.append((due, p))
        self.pending_delete = keep


def listdir(d: Path) -> list[str]:
    try:
        return os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return []


def parquet_files(d: Path) -> list[Path]:
    return [d / n for n in listdir(d) if n.endswith(".parquet") and not n.startswith(".")]


def _data_dirs(root: Path) -> list[Path]:
    """Every <measurement>/<day> directory."""
    out = []
    for m in sorted(listdir(root)):
        if reserved_name(m) or not (root / m).is_dir():
            continue
        for day in sorted(listdir(root / m)):
            with contextlib.suppress(ValueError):
                date.fromisoformat(day)
                out.append(root / m / day)
    return out


def reserved_name(name: str) -> bool:
    """A directory of the store that is not a measurement (its own, or a hidden / temporary one)."""
    return not name or name.startswith(("_", ".")) or name in RESERVED_MEASUREMENTS


WRITERS: dict[str, Writer] = {}
WRITERS_LOCK = threading.Lock()
