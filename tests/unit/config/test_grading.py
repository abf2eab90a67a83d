"""GradingConfig: one flag set for grade and evaluate (old spellings as aliases), one
worker-count rule, validation when made."""

import argparse
import os

import pytest

from megatron_o1p.config.grading import MAX_DEFAULT_WORKERS, GradingConfig
from megatron_o1p.errors import ConfigError
from megatron_o1p.grading.equivalence import DEFAULT_MEMORY_LIMIT_MB, Grader


def _parse(*argv):
    parser = argparse.ArgumentParser()
    GradingConfig.add_arguments(parser)
    return GradingConfig.from_args(parser.parse_args(list(argv)))


def test_grade_spellings_are_aliases_of_the_grade_flags():
    new = _parse("--grade-timeout", "3", "--grade-workers", "2", "--grade-memory-limit-mb", "0")
    old = _parse("--timeout", "3", "--workers", "2", "--memory-limit-mb", "0")
    assert new == old == GradingConfig(timeout_s=3, workers=2, memory_limit_mb=0)
    assert _parse("--extract", "first").extract_mode == "first"
    assert _parse() == GradingConfig()
    assert GradingConfig().memory_limit_mb == DEFAULT_MEMORY_LIMIT_MB


def test_one_worker_rule_and_the_pool_it_builds():
    assert GradingConfig(workers=3).num_workers == 3
    assert GradingConfig().num_workers == min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)
    grader = GradingConfig(workers=2, timeout_s=7, memory_limit_mb=1024).build()
    assert isinstance(grader, Grader)
    assert (grader.workers, grader.timeout_s, grader.memory_limit_mb) == (2, 7, 1024)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"extract_mode": "middle"}, "--extract must be one of"),
        ({"timeout_s": 0}, "--grade-timeout must be whole seconds >= 1, got 0"),
        ({"timeout_s": 2.5}, "--grade-timeout must be whole seconds >= 1, got 2.5"),
        ({"timeout_s": True}, "--grade-timeout must be whole seconds"),
        ({"workers": -1}, "--grade-workers must be >= 0"),
        ({"memory_limit_mb": -1}, "--grade-memory-limit-mb must be >= 0"),
    ],
)
def test_bad_values_are_refused_when_made(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GradingConfig(**kwargs)
