"""The same sweep on a Dask LocalCluster (loopback, two worker processes) gives the local
table exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.optimize.test_sweep import comparable, sweep

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as c:
        yield c.scheduler_address


def test_dask_cluster_gives_the_local_table(
    cluster: str, synthetic: tuple[Path, list[str]], tmp_path: Path
) -> None:
    store, symbols = synthetic
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert sweep(store, symbols, local, "--workers", "1", "--no-report") == 0
    assert sweep(store, symbols, remote, "--scheduler", cluster, "--no-report") == 0
    workers = set(pd.read_csv(remote / "results.csv")["worker"])
    assert all(w.startswith("tcp://127.0.0.1:") for w in workers)
    pd.testing.assert_frame_equal(comparable(remote), comparable(local), check_exact=True)
    assert (remote / "best.toml").read_text() == (local / "best.toml").read_text()
