import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path, monkeypatch):
    """Every test gets its own workspace, never the user's."""
    monkeypatch.setenv("GDRIVE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("NUMBA_NUM_THREADS", os.environ.get("NUMBA_NUM_THREADS", "2"))
    yield
