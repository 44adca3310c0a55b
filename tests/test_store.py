"""Workspace and artifacts: ids, reuse, --force, atomic publishing, locks, references."""

import json
import multiprocessing as mp
import os

import pytest

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.store import Workspace, artifact_id, find_artifact, list_artifacts, publish
from geniedrive.pipelines.store.workspace import resolve_workspace


def _build(text):
    def build(w):
        w.write_bytes("data.txt", text.encode())
        return {"summary": {"len": len(text)}}

    return build


def test_workspace_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("GDRIVE_WORKSPACE", str(tmp_path / "env"))
    assert resolve_workspace("flag") == resolve_workspace("flag")
    assert str(resolve_workspace("flag")) == "flag"
    assert resolve_workspace(None) == tmp_path / "env"
    monkeypatch.delenv("GDRIVE_WORKSPACE")
    assert str(resolve_workspace(None)) == "gdrive-workspace"


def test_artifact_id_depends_on_stage_schema_config_and_inputs():
    base = artifact_id("s", 1, {"a": 1, "b": [1, 2]}, {"x": "id1"})
    assert base == artifact_id("s", 1, {"b": [1, 2], "a": 1}, {"x": "id1"})  # key order irrelevant
    assert len({base, artifact_id("t", 1, {"a": 1, "b": [1, 2]}, {"x": "id1"}),
                artifact_id("s", 2, {"a": 1, "b": [1, 2]}, {"x": "id1"}),
                artifact_id("s", 1, {"a": 2, "b": [1, 2]}, {"x": "id1"}),
                artifact_id("s", 1, {"a": 1, "b": [1, 2]}, {"x": "id2"})}) == 5


def test_publish_reuses_same_id_and_refuses_other_config(tmp_path):
    ws = Workspace(tmp_path / "ws")
    r1 = publish(ws, "dataset", "st", 1, "demo", {}, {"a": 1}, {}, _build("one"))
    assert not r1.reused and (r1.artifact.path / "data.txt").read_text() == "one"
    r2 = publish(ws, "dataset", "st", 1, "demo", {}, {"a": 1}, {}, _build("two"))
    assert r2.reused and (r2.artifact.path / "data.txt").read_text() == "one"
    with pytest.raises(BadInput, match=r"--name demo: a dataset of that name exists with another configuration"):
        publish(ws, "dataset", "st", 1, "demo", {}, {"a": 2}, {}, _build("three"))
    assert (r1.artifact.path / "data.txt").read_text() == "one"  # nothing lost
    r3 = publish(ws, "dataset", "st", 1, "demo", {}, {"a": 2}, {}, _build("three"), force=True)
    assert not r3.reused and (r3.artifact.path / "data.txt").read_text() == "three"
    assert r3.artifact.id != r1.artifact.id
    assert sorted(p.name for p in (ws.root / "datasets").iterdir()) == [".locks", "demo"]


def test_failed_build_leaves_no_artifact_and_keeps_the_old_one(tmp_path):
    ws = Workspace(tmp_path / "ws")
    publish(ws, "dataset", "st", 1, "demo", {}, {"a": 1}, {}, _build("keep"))

    def bad(w):
        w.write_bytes("half.txt", b"x")
        raise BadInput("boom")

    with pytest.raises(BadInput):
        publish(ws, "dataset", "st", 1, "demo", {}, {"a": 9}, {}, bad, force=True)
    with pytest.raises(BadInput):
        publish(ws, "dataset", "st", 1, "other", {}, {"a": 9}, {}, bad)
    names = sorted(p.name for p in (ws.root / "datasets").iterdir())
    assert names == [".locks", "demo"]
    assert (ws.root / "datasets" / "demo" / "data.txt").read_text() == "keep"


def test_non_gdrive_folder_is_never_replaced(tmp_path):
    ws = Workspace(tmp_path / "ws")
    (ws.root / "datasets" / "mine").mkdir(parents=True)
    (ws.root / "datasets" / "mine" / "precious.txt").write_text("x")
    with pytest.raises(BadInput, match="not a gdrive dataset"):
        publish(ws, "dataset", "st", 1, "mine", {}, {}, {}, _build("y"), force=True)
    assert (ws.root / "datasets" / "mine" / "precious.txt").read_text() == "x"


def test_leftovers_of_a_killed_run_are_invisible_and_cleaned(tmp_path):
    ws = Workspace(tmp_path / "ws")
    tmp = ws.root / "datasets" / ".tmp-demo-deadbeef"
    tmp.mkdir(parents=True)
    (tmp / "manifest.json").write_text("{}")
    assert list_artifacts(ws, "dataset") == []
    publish(ws, "dataset", "st", 1, "demo", {}, {"a": 1}, {}, _build("ok"))
    assert not tmp.exists()


def test_references_by_name_id_prefix_latest_and_unknown(tmp_path):
    ws = Workspace(tmp_path / "ws")
    a = publish(ws, "dataset", "st", 1, "alpha", {}, {"a": 1}, {}, _build("a")).artifact
    b = publish(ws, "dataset", "st", 1, "beta", {}, {"a": 2}, {}, _build("b")).artifact
    assert find_artifact(ws, "dataset", "alpha", "--dataset").path == a.path
    assert find_artifact(ws, "dataset", b.id, "--dataset").path == b.path
    assert find_artifact(ws, "dataset", b.id[:6], "--dataset").path == b.path
    assert find_artifact(ws, "dataset", "latest", "--dataset").path == b.path
    with pytest.raises(BadInput) as exc:
        find_artifact(ws, "dataset", "gamma", "--dataset")
    msg = str(exc.value)
    assert "--dataset 'gamma'" in msg and f"alpha ({a.id[:8]})" in msg and "beta" in msg
    assert "gdrive prepare-occ --name gamma" in msg


def test_unwritable_workspace_is_bad_input(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BadInput, match="is a file"):
        Workspace(f).ensure_writable()
    with pytest.raises(BadInput, match="not writable"):
        Workspace(f / "sub").ensure_writable()


def _slow_publish(root, out_q):
    import time

    ws = Workspace(root)

    def build(w):
        time.sleep(0.5)
        w.write_bytes("pid.txt", str(os.getpid()).encode())
        return {}

    r = publish(ws, "dataset", "st", 1, "shared", {}, {"a": 1}, {}, build)
    out_q.put((os.getpid(), r.reused))


def test_two_concurrent_runs_build_once(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_slow_publish, args=(tmp_path / "ws", q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = sorted(q.get(timeout=5) for _ in procs)
    assert sorted(r for _, r in results) == [False, True]  # one built, one reused
    builder = next(pid for pid, reused in results if not reused)
    art = tmp_path / "ws" / "datasets" / "shared"
    assert (art / "pid.txt").read_text() == str(builder)
    assert json.loads((art / "manifest.json").read_text())["kind"] == "dataset"
