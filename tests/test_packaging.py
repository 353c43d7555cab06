"""The package as users get it: a wheel from the source tree, its assets and public API."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

import tb_layerview
from tb_layerview.plugin import STATIC_FILES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_contains_the_frontend_the_proto_and_the_entry_point(tmp_path):
    """A wheel built from the source tree ships every panel asset and registers the plugin."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "artifacts", "build", "*.egg-info",
                                                             "node_modules", "__pycache__", "demo_logs"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = zipfile.ZipFile(glob.glob(str(tmp_path / "dist" / "*.whl"))[0])
    names = set(wheel.namelist())
    for asset in STATIC_FILES:
        assert "tb_layerview/frontend/" + asset in names, asset
    assert {"tb_layerview/proto/plugin_data_pb2.py", "tb_layerview/proto/plugin_data.proto"} <= names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = wheel.read(entry).decode()
    assert "[tensorboard_plugins]" in text and "tb_layerview = tb_layerview.plugin:LayerViewLoader" in text


def test_static_allow_list_matches_the_frontend_folder():
    """Every file in frontend/ is served and every served file exists."""
    assert set(STATIC_FILES) == set(os.listdir(os.path.join(ROOT, "frontend")))


def test_public_api_and_single_version_source():
    """__all__ lists the public API; the version comes from tb_layerview/version.py."""
    from tb_layerview import version

    assert tb_layerview.__version__ == version.VERSION
    for name in tb_layerview.__all__:
        assert getattr(tb_layerview, name) is not None


def test_importing_the_package_does_not_import_tensorflow():
    """`import tb_layerview` stays light: TensorFlow and Keras load on first use only."""
    code = "import sys, tb_layerview; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


def test_frontend_builds_dom_without_html_strings_or_remote_assets():
    """The panel never parses data as HTML and loads nothing from outside the package."""
    import re

    folder = os.path.join(ROOT, "frontend")
    for name in os.listdir(folder):
        text = open(os.path.join(folder, name), encoding="utf-8").read()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text), name
        assert not re.search(r"https?://", text), name
        if name.endswith(".js"):
            assert not re.search(r"\beval\(|new Function\(", text), name
            for spec in re.findall(r"^import .* from '([^']+)';", text, re.M):
                assert spec.startswith("./") and spec[2:] in STATIC_FILES, (name, spec)
