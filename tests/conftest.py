import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path, monkeypatch):
    """Every test gets its own workspace, never the user's."""
    monkeypatch.setenv("GDRIVE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("NUMBA_NUM_THREADS", os.environ.get("NUMBA_NUM_THREADS", "2"))
    yield


@pytest.fixture
def one_torch_thread():
    """One torch thread for tiny models: they gain nothing from threads, and on a shared 2-core
    machine two spinning OpenMP threads ran their tests 4-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
