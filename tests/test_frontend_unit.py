"""Runs the panel's pure-logic unit tests (tests/js/*.test.mjs) with node's test runner."""

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def test_frontend_unit_tests_pass_under_node():
    """state.js, normalise.js and views.js pass their node --test suites."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the frontend unit tests (scripts/test.sh installs it)")
    files = sorted(os.path.join(HERE, "js", f) for f in os.listdir(os.path.join(HERE, "js")) if f.endswith(".test.mjs"))
    out = subprocess.run([node, "--test"] + files, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout
