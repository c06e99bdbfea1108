import os

# Tests never touch the network or the hub, and keep derived data out of the user's cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
