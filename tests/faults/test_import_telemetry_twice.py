"""Issue 17.9 (import part): importing the same telemetry twice never doubles the rows.

A repeated import of a file is recognised (its content and options) and stores nothing, with a message saying so;
an import cut short by a bad line stores the lines before it, and importing the fixed file again stores only the
rest; the same rows reached under other options are not stored again either.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from analysis.ingest.cli import app
from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import import import_telemetry_file
from telemetry.store.factory import open_store

runner = CliRunner()
T0 = 1_772_841_600_000_000_000


def host_lines(n: int, start: int = 0) -> str:
    return "".join(f"host,node=n1 load1={i / 10},cpu_count=64i {T0 + i * 10**9}\n" for i in range(start, start + n))


def host_rows(store_dir: Path) -> list[int]:
    st = open_store(store_dir)
    try:
        return st.query("host")["time"].dt.epoch("ns").to_list()
    finally:
        st.close()


def test_importing_the_same_file_twice_stores_its_rows_once_and_says_so(tmp_path):
    lp = tmp_path / "telegraf.lp"
    lp.write_text(host_lines(50))
    store = tmp_path / "store"
    first = runner.invoke(app, ["telemetry", str(lp), "--store", str(store)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["telemetry", str(lp), "--store", str(store)])
    assert second.exit_code == 0, second.output
    assert "already imported" in second.stderr and "nothing stored" in second.stderr
    times = host_rows(store)
    assert len(times) == 50 and len(set(times)) == 50


def test_the_same_rows_under_another_option_are_not_stored_again(tmp_path):
    lp = tmp_path / "telegraf.lp"
    lp.write_text(host_lines(20))  # every line has its node: --node changes no row
    store = tmp_path / "store"
    assert runner.invoke(app, ["telemetry", str(lp), "--store", str(store)]).exit_code == 0
    again = runner.invoke(app, ["telemetry", str(lp), "--store", str(store), "--node", "other"])
    assert again.exit_code == 0, again.output
    assert "already in the store" in again.stderr
    assert len(host_rows(store)) == 20


def test_an_import_cut_short_by_a_bad_line_stores_only_the_rest_when_run_again(tmp_path):
    good, bad = host_lines(3000), host_lines(3000, start=3000)
    lines = bad.splitlines(keepends=True)
    lines[1500] = "host,node=n1 load1= 1\n"  # a broken line far into the file
    lp = tmp_path / "big.lp"
    lp.write_text(good + "".join(lines))
    store_dir = tmp_path / "store"
    st = open_store(store_dir)
    try:
        try:
            import_telemetry_file(st, lp, chunk_bytes=16 * 1024)  # many chunks: the first ones are stored
        except TelemetryFormatError as exc:
            message = str(exc)
        else:
            raise AssertionError("a bad line must be refused")
        assert f"big.lp:{3000 + 1500 + 1}:" in message and "not stored twice" in message
        stored_before = st.query("host").height
        assert 0 < stored_before < 4500
        # the lines the message says are stored are those stored (chunks are parsed ahead of the one stored)
        assert f"the rows of lines 1-{stored_before} are stored" in message
        lp.write_text(good + bad)  # fixed
        result = import_telemetry_file(st, lp, chunk_bytes=16 * 1024)
        assert result.chunks_replayed > 0
        times = st.query("host")["time"].dt.epoch("ns").to_list()
        assert len(times) == 6000 and len(set(times)) == 6000
    finally:
        st.close()
