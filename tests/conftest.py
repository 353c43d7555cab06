"""Shared fixtures: quiet TensorFlow and make tests/ importable."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest


@pytest.fixture(scope="session")
def logdir(tmp_path_factory):
    """A log directory with three runs written by real fits (see helpers.write_logs)."""
    import helpers

    path = tmp_path_factory.mktemp("logs")
    helpers.write_logs(str(path))
    return str(path)
