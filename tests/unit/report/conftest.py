"""Shared report fixtures: the synthetic set with paired rows is merged once (its bootstrap is the
slow part), with fewer resamples than a report uses: the tests check structure and known answers,
not the last digit of an interval."""

from __future__ import annotations

import pytest

from fixtures.results.synthetic import result_file
from ppd.report.bootstrap import BootstrapConfig
from ppd.report.inputs import read_result_file
from ppd.report.merge import MergedResults, merge

TEST_BOOTSTRAP = BootstrapConfig(num_resamples=400, seed=0)


@pytest.fixture(scope="session")
def paired_rows_merged(tmp_path_factory: pytest.TempPathFactory) -> MergedResults:
    """PD, PPD and Replication with rows: PPD crosses Replication at QPS 2.8, significantly."""
    directory = tmp_path_factory.mktemp("paired-rows")
    source = result_file(directory, "a", ("pd", "ppd", "replication"), rows=True)
    return merge([read_result_file(source)], TEST_BOOTSTRAP)
