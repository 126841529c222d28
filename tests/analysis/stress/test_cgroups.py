"""Tenant cgroups of a stress plan: the plan option, the mount detection, and (root, real cgroup v2) the runner putting
each tenant's processes in a group of its own, killing what escaped its process group, and removing the groups."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import polars as pl
import pytest

from analysis.stress.cgroups import Cgroup, CgroupError, v2_mount
from analysis.stress.plan import Plan, tenant_cgroups
from analysis.stress.runner import run_plan
from telemetry.config import model_from_dict
from telemetry.errors import ConfigError
from telemetry.store.factory import open_store
from tests.conftest import in_ci


def _plan(**over: object) -> dict:
    doc: dict = {
        "plan": {"name": "t", "node": "n1", "design": "phases", "repetitions": 1},
        "victim": {"group": "hive0", "command": ["true"]},
        "cotenant": [{"group": "hog", "command": ["sleep", "300"], "grace": 2}, {"group": "io", "command": ["true"]}],
        "phase": [{"name": "busy", "cotenants": ["hog"]}],
    }
    for k, v in over.items():
        doc[k] = {**doc[k], **v} if isinstance(v, dict) else v
    return doc


def test_plan_cgroup_true_gives_every_tenant_parent_slash_group() -> None:
    plan = model_from_dict(Plan, _plan(plan={"cgroup": True, "cgroup_parent": "ns/exp1"}), "t")
    assert tenant_cgroups(plan) == {"hive0": "ns/exp1/hive0", "hog": "ns/exp1/hog", "io": "ns/exp1/io"}


def test_per_tenant_cgroup_overrides_the_plan_default() -> None:
    doc = _plan(victim={"cgroup": False})
    doc["cotenant"][0]["cgroup"] = "/tenants/hog/"
    doc["plan"]["cgroup"] = True
    assert tenant_cgroups(model_from_dict(Plan, doc, "t")) == {"hog": "tenants/hog", "io": "neighborscope/io"}
    assert tenant_cgroups(model_from_dict(Plan, _plan(), "t")) == {}


@pytest.mark.parametrize("bad", ["../etc", "a//b", "a b", "a/./b"])
def test_a_cgroup_path_that_is_not_plain_is_named_in_one_line(bad: str) -> None:
    doc = _plan()
    doc["cotenant"][0]["cgroup"] = bad
    with pytest.raises(ConfigError) as exc:
        model_from_dict(Plan, doc, "plan.toml")
    assert "cotenant[0].cgroup: not a cgroup path" in str(exc.value)


def test_two_tenants_in_one_cgroup_is_a_plan_error() -> None:
    doc = _plan(victim={"cgroup": "shared"})
    doc["cotenant"][0]["cgroup"] = "shared"
    with pytest.raises(ConfigError, match="given to two tenants"):
        model_from_dict(Plan, doc, "plan.toml")


def test_v2_mount_prefers_the_unified_root_and_finds_the_hybrid_one(tmp_path: Path) -> None:
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    unified = tmp_path / "unified"
    unified.write_text("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\ncgroup2 /mnt/other cgroup2 rw 0 0\n")
    v1 = tmp_path / "v1"
    v1.write_text("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n")
    assert v2_mount(hybrid) == Path("/sys/fs/cgroup/unified")
    assert v2_mount(unified) == Path("/sys/fs/cgroup")
    assert v2_mount(v1) is None
    assert v2_mount(tmp_path / "absent") is None


def test_a_directory_that_is_not_a_cgroup_mount_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="not a cgroup v2 mount"):
        Cgroup.under(tmp_path, "neighborscope/x").create()
    assert not (tmp_path / "neighborscope").exists()


def _root_v2() -> Path:
    mount = v2_mount()
    problem = None
    if mount is None:
        problem = "no cgroup v2 mount on this host"
    elif os.geteuid() != 0 and not os.access(mount, os.W_OK):
        problem = "creating cgroups needs root (or a delegated subtree)"
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    return mount


def _v2_path(text: str) -> str:
    return next(line.split(":", 2)[2] for line in text.splitlines() if line.startswith("0::"))


@pytest.mark.slow
def test_runner_puts_each_tenant_in_its_own_cgroup_and_removes_them(tmp_path: Path) -> None:
    mount = _root_v2()
    parent = f"neighborscope-test-{os.getpid()}"
    out = tmp_path / "out"
    out.mkdir()
    doc = _plan(
        plan={"cgroup": True, "cgroup_parent": parent},
        victim={"command": f"sleep 0.5; cat /proc/self/cgroup > {out}/victim", "shell": True},
    )
    doc["cotenant"] = [
        {  # a shell whose child forks; and a grandchild that leaves the process group (setsid): the cgroup has it
            "group": "hog",
            "shell": True,
            "grace": 2,
            "command": f"cat /proc/self/cgroup > {out}/hog; setsid sleep 300 & echo $! > {out}/escaped; wait",
        },
        {"group": "io", "command": ["true"]},
    ]
    plan = model_from_dict(Plan, doc, "t")
    store = tmp_path / "store"
    run_plan(plan, store=str(store), workdir=tmp_path / "work", echo=lambda m: None)
    assert _v2_path((out / "victim").read_text()) == f"/{parent}/hive0"
    assert _v2_path((out / "hog").read_text()) == f"/{parent}/hog"
    escaped = int((out / "escaped").read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{escaped}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{escaped}").exists(), "a co-tenant process outside its process group outlived its cgroup"
    assert not (mount / parent).exists()
    st = open_store(store)
    try:
        on = st.query("run_event", tags={"event": ["switch_on"]})
    finally:
        st.close()
    meta = [json.loads(m) for m in on.filter(pl.col("tenant") == "hog")["metadata_json"].to_list()]
    assert [m["cgroup"] for m in meta] == [f"/{parent}/hog"]


@pytest.mark.slow
def test_an_existing_cgroup_is_used_and_left_in_place(tmp_path: Path) -> None:
    mount = _root_v2()
    mine = Cgroup.under(mount, f"neighborscope-test-{os.getpid()}-kept").create()
    try:
        doc = _plan()
        doc["cotenant"][0]["cgroup"] = mine.rel
        run_plan(
            model_from_dict(Plan, doc, "t"), store=str(tmp_path / "s"), workdir=tmp_path / "w", echo=lambda m: None
        )
        assert mine.path.is_dir() and mine.pids() == []
    finally:
        mine.remove()
    assert not mine.path.exists()
