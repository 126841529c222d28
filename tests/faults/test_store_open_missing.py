"""Issue 18.3 (store side): a reading command never creates a store.

``analyze --store /nonexistent`` created the directory and ``report`` on a mistyped store wrote a "NO DATA"
report that a cron job would not notice. ``open_store(url, create=False)`` (what the reading commands pass)
refuses a store directory that does not exist, naming it, and creates nothing; writers keep ``create=True``.
"""

from __future__ import annotations

import pytest

from telemetry.errors import StoreError
from telemetry.store.factory import open_store


def test_a_missing_store_is_an_error_naming_it_and_nothing_is_created(tmp_path):
    missing = tmp_path / "typo" / "store"
    with pytest.raises(StoreError, match=rf"store {missing} does not exist; check --store"):
        open_store(str(missing), create=False)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"file://{missing}", create=False)
    assert not (tmp_path / "typo").exists()


def test_an_existing_store_opens_for_reading(tmp_path):
    (tmp_path / "store").mkdir()
    store = open_store(tmp_path / "store", create=False)
    assert store.measurements() == []
    store.close()


def test_writers_still_create_the_store(tmp_path):
    store = open_store(tmp_path / "new" / "store")
    assert (tmp_path / "new" / "store").is_dir()
    store.close()


def test_a_store_path_that_is_a_file_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="is not a directory"):
        open_store(tmp_path / "notes.txt")
