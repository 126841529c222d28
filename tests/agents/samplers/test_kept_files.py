"""`KeptFile`: procfs / sysfs files kept open and read again with ``pread``; regular files opened at each read."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from agents.samplers.base import FileCache, KeptFile
from agents.samplers.tenants import _stat_fast


def test_a_procfs_file_is_kept_open_and_read_anew_from_offset_0():
    f = KeptFile("/proc/uptime")
    first = f.read()
    assert f._fd is not None  # kept: the kernel makes the text at each read
    deadline = time.monotonic() + 2
    while (again := f.read()) == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert again != first and float(again.split()[0]) >= float(first.split()[0])
    f.close()


def test_a_regular_file_is_opened_at_each_read_so_a_replaced_file_reads_new(tmp_path):
    path = tmp_path / "counter"
    path.write_text("1\n")
    f = KeptFile(path)
    assert f.read() == b"1\n" and f._fd is None
    (tmp_path / "new").write_text("2\n")
    os.replace(tmp_path / "new", path)  # a fake tree's file replaced under the same name
    assert f.read() == b"2\n"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        f.read()
    assert f.text() is None


def test_a_file_larger_than_the_buffer_is_read_whole(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 5000)
    assert KeptFile(tmp_path / "big", size=16).read() == b"x" * 5000
    stat = KeptFile("/proc/self/status", size=16)
    assert stat.read().count(b"\n") > 10 and stat.read().startswith(b"Name:")


def test_the_kept_stat_of_a_process_that_exits_reads_as_gone():
    child = subprocess.Popen(["sleep", "30"])
    f = KeptFile(f"/proc/{child.pid}/stat", 1024)
    try:
        assert _stat_fast(f) is not None and f._fd is not None
    finally:
        child.kill()
        child.wait()
    assert _stat_fast(f) is None  # ESRCH on the kept file, then no /proc/<pid> by its path
    f.close()


def test_file_cache_keeps_only_the_files_of_the_directories_still_read(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x").write_text(d)
    cache = FileCache()
    assert cache.text(tmp_path / "a" / "x") == "a" and cache.text(str(tmp_path / "b" / "x")) == "b"
    cache.keep_only([str(tmp_path / "b")])
    assert list(cache._files) == [str(tmp_path / "b" / "x")]
    cache.close()


def test_past_the_process_wide_limit_files_are_opened_at_each_read(monkeypatch):
    monkeypatch.setattr(KeptFile, "MAX_KEPT", KeptFile.kept_total + 1)
    first, second = KeptFile("/proc/uptime"), KeptFile("/proc/loadavg")
    assert first.read() and second.read()
    assert first._fd is not None and second._fd is None  # no descriptor left to keep: read as before
    assert second.read().count(b" ") >= 4
    first.close()
    assert second.read() and second._fd is not None  # one was given back
    second.close()
