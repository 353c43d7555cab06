"""Export: stored images to viewable PNG folders and GIFs, without TensorFlow."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tb_layerview import export, render


def test_viewable_colours_non_finite_values_and_hides_padding():
    """LA pixels become grey RGBA; NaN magenta, +Inf yellow, -Inf cyan, padding transparent."""
    la = np.array([[[10, 255], [0, 1], [0, 2], [0, 3], [0, 0]]], np.uint8)
    out = export.viewable(render.encode_png(la))
    assert out.tolist() == [[[10, 10, 10, 255], [255, 0, 255, 255], [255, 255, 0, 255],
                             [0, 255, 255, 255], [0, 0, 0, 0]]]
    assert export.viewable(render.encode_png(la), scale=2).shape == (2, 10, 4)


def test_export_writes_one_png_per_step_and_a_gif_over_epochs(logdir, tmp_path):
    """A layer's activations give a PNG per epoch and a GIF with a frame per epoch."""
    written = export.export(logdir, str(tmp_path), runs=["cnn"], layers=["conv1"], probes=[0], gif=True, scale=2)
    folder = tmp_path / "cnn" / "activations" / "conv1"
    pngs = sorted(p for p in os.listdir(folder) if p.endswith(".png"))
    assert len(pngs) == 16 and pngs[0] == "step_000000_probe0.png" and len(written) == 17
    assert Image.open(folder / pngs[0]).size == (64, 42)
    gif = Image.open(folder / "epochs_probe0.gif")
    assert gif.n_frames == 16


def test_export_command_line_needs_no_tensorflow(logdir, tmp_path):
    """python -m tb_layerview.export works with TensorFlow and Keras impossible to import."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from tb_layerview import export\n"
        "sys.exit(export.main(sys.argv[1:]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, logdir, str(tmp_path), "--run", "mlp", "--kind", "backquery",
                          "--kind", "filters"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote" in out.stdout
    assert len(os.listdir(tmp_path / "mlp" / "backquery" / "backquery")) == 4 * 3
    assert len(os.listdir(tmp_path / "mlp" / "filters" / "hidden")) == 4


def test_export_command_line_errors(tmp_path):
    """A missing log directory is a usage error; an empty one exports nothing with exit 1."""
    out = subprocess.run([sys.executable, "-m", "tb_layerview.export", str(tmp_path / "missing"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = subprocess.run([sys.executable, "-m", "tb_layerview.export", str(tmp_path), str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "nothing exported" in out.stderr


def test_contact_sheet_lays_channels_out_by_epochs(logdir, tmp_path):
    """conv1 of the CNN run (6 channels of 10x10, 16 epochs): a 6 x 16 grid of tiles with 1-pixel gaps."""
    written = export.contact_sheets(logdir, str(tmp_path), runs=["cnn"], layers=["conv1"])
    assert written == [str(tmp_path / "cnn" / "activations" / "conv1" / "contact_probe0.png")]
    sheet = np.asarray(Image.open(written[0]))
    assert sheet.shape == (6 * 11 - 1, 16 * 11 - 1, 4)
    tile = export._tile(export.viewable(render.encode_png(np.stack(
        [np.arange(100, dtype=np.uint8).reshape(10, 10), np.full((10, 10), 255, np.uint8)], -1))),
        {"cols": 1, "tile_w": 10, "tile_h": 10, "gap": 1}, 0)
    assert tile.shape == (10, 10, 4)
    assert (sheet[10, :, 3] == 0).all()  # the gap row between channels 0 and 1 is transparent


def test_contact_sheet_of_cells_of_different_sizes_enlarges_the_small_ones():
    """A 2x2 cell next to a 4x4 one is repeated to 4x4; a missing cell stays transparent."""
    small = np.full((2, 2, 4), 7, np.uint8)
    big = np.full((4, 4, 4), 9, np.uint8)
    sheet = export.contact_sheet([[small, big], [None, big]])
    assert sheet.shape == (9, 9, 4)
    assert (sheet[:4, :4] == 7).all() and (sheet[:4, 5:] == 9).all() and (sheet[5:, :4] == 0).all()


def test_health_csv_has_a_row_per_run_step_and_layer(logdir, tmp_path):
    """health.csv lists every layer of every logged step with its unit counts."""
    import csv

    out = subprocess.run([sys.executable, "-m", "tb_layerview.export", logdir, str(tmp_path), "--health-csv",
                          "--run", "cnn"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "health.csv", encoding="utf-8")))
    assert len(rows) == 16 * 5 and list(rows[0]) == list(export.HEALTH_COLUMNS)
    conv1 = [r for r in rows if r["layer"] == "conv1"]
    assert conv1[0]["activation"] == "relu" and conv1[0]["channels"] == "6" and conv1[0]["saturated_units"] == ""
    assert all(0 <= int(r["dead_units"]) <= 6 for r in conv1)
    assert "[" in out.stderr  # the progress bar over 16 steps


def test_units_csv_lists_each_unit_with_a_problem_and_since_when(tmp_path):
    """units.csv: a ReLU unit dead at every step is dead since 0; one that revived at step 1 and died
    again at step 2 is dead since 2; a live unit and a layer without problems have no row."""
    import csv

    import keras

    from tb_layerview import LayerView

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="relu", name="units"),
                              keras.layers.Dense(1, name="out")])
    lv = LayerView(str(tmp_path / "logs" / "planted"), probe=np.ones((2, 2), np.float32), class_views=False)
    lv.set_model(model)
    dense = model.get_layer("units")
    seen = []
    for step, bias in enumerate([[-1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]]):
        dense.set_weights([np.zeros((2, 3), np.float32), np.array(bias, np.float32)])
        lv.log(step=step)
        seen.append([(u["channel"], u["since"], u["last_step"]) for u in lv.unit_problems()])
    lv.close()
    # The same answer from the callback, step by step, while the writer thread writes.
    assert seen == [[(0, 0, 0), (1, 0, 0)], [(0, 0, 1)], [(0, 0, 2), (1, 2, 2)]]
    out = subprocess.run([sys.executable, "-m", "tb_layerview.export", str(tmp_path / "logs"), str(tmp_path / "out"),
                          "--health-csv"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "out" / "units.csv", encoding="utf-8")))
    assert [tuple(r[k] for k in export.UNIT_COLUMNS) for r in rows] == [
        ("planted", "units", "relu", "0", "dead", "0", "2"), ("planted", "units", "relu", "1", "dead", "2", "2")]
    # The README's Python form of the same answer.
    _, units = export.health_tables(str(tmp_path / "logs"), runs=["planted"])
    assert [(u["layer"], u["channel"], u["since"]) for u in units if u["problem"] == "dead"] == [
        ("units", 0, 0), ("units", 1, 2)]
    assert [dict(u, run="planted") for u in lv.unit_problems()] == units


def test_progress_bar_reaches_the_total():
    """Progress writes a bar that ends at total/total with a newline."""
    import io

    stream = io.StringIO()
    bar = export.Progress(3, stream=stream, width=3, min_total=1)
    for i in range(3):
        bar.step("item %d" % i)
    assert stream.getvalue().rstrip().endswith("[###] 3/3 item 2")


def test_unreadable_items_are_left_out_and_listed_and_the_rest_is_written(logdir, tmp_path):
    """A log directory holding runs of records of another form than tb_layerview writes beside a
    good run: every form of export writes the good run's files, lists each item it left out on
    standard error (run, series, step and why) and exits 1. It used to stop at the first one with
    a traceback, writing nothing after it."""
    import shutil

    from helpers import write_malformed

    mixed = tmp_path / "logs"
    shutil.copytree(os.path.join(logdir, "cnn"), mixed / "cnn")
    write_malformed(str(mixed))
    for i, args in enumerate((["--health-csv"], ["--contact-sheet", "--layer", "conv1", "--layer", "L"],
                              ["--gif", "--layer", "conv1", "--layer", "L", "--probe", "0"])):
        out = tmp_path / ("out%d" % i)
        result = subprocess.run([sys.executable, "-m", "tb_layerview.export", str(mixed), str(out)] + args,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "in run 'wrong_types' at step 1: " in result.stderr, result.stderr[-2000:]
        assert "left out %s" % ("the record of the stats series" if i == 0 else
                                "the column of the activations series of layer 'L'" if i == 1 else
                                "image 0 of the activations series of layer 'L'") in result.stderr
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert written and all(p.startswith("cnn") or p.endswith(".csv") for p in written), written
        if i == 0:
            assert {"cnn"} == {line.split(",")[0] for line in (out / "health.csv").read_text().splitlines()[1:]}


def test_a_selection_that_matches_nothing_names_the_value_and_what_the_log_holds(logdir, tmp_path, capsys):
    """--run, --layer and --probe values that select nothing are each named on standard error with
    what there is to choose from, and the export exits 1, writing what the rest selects. They used to
    give a bare "no tb_layerview images match", or nothing at all beside a selector that matched."""

    def run(*args):
        code = export.main([logdir, str(tmp_path / "out")] + list(args))
        return code, capsys.readouterr().err

    code, err = run("--run", "nope")
    assert code == 1 and "--run 'nope' is no run in %s; its runs: " % logdir in err and "'cnn', 'mlp'" in err
    code, err = run("--run", "cnn", "--layer", "conv1", "--layer", "conv9")
    assert code == 1 and ("--layer 'conv9' is no layer of the run in %s; its layers: 'conv1', 'conv2', 'flatten',"
                          " 'pool1', 'predictions'" % logdir) in err
    assert len(os.listdir(tmp_path / "out" / "cnn" / "activations" / "conv1")) == 16 * 3
    code, err = run("--run", "cnn", "--layer", "pool1", "--kind", "filters")
    assert code == 1 and "--layer 'pool1' has no filters series (it has activations); choose them with --kind" in err
    code, err = run("--run", "cnn", "--layer", "conv1", "--probe", "3")
    assert code == 1 and "--probe 3 is no image of the chosen series: their steps hold images 0 to 2" in err
    code, err = run("--run", "mlp", "--kind", "filters", "--probe", "1")
    assert code == 1 and "--probe 1 is no image of the chosen series: their steps hold only image 0" in err
    assert "nothing exported: the selection above matches nothing" in err
    code, err = run("--run", "cnn", "--layer", "conv1", "--probe", "2")
    assert code == 0 and "nothing selected" not in err
    # A regular expression, as LayerView's layers argument takes it; a broken one is a usage error.
    code, err = run("--run", "cnn", "--layer", r"conv\d", "--probe", "0", "--gif")
    assert code == 0 and sorted(os.listdir(tmp_path / "out" / "cnn" / "activations")) == ["conv1", "conv2"]
    with pytest.raises(SystemExit) as stop:
        run("--layer", "conv(")
    assert stop.value.code == 2 and "--layer: 'conv(' is not a valid regular expression" in capsys.readouterr().err


def test_health_csv_keeps_the_chosen_layers_and_gif_comes_with_the_other_forms(logdir, tmp_path, capsys):
    """--layer chooses the rows of --health-csv too; --gif beside --contact-sheet writes the PNG
    folder and its GIF as well as the sheet (it used to be dropped without a word)."""
    import csv

    out = tmp_path / "out"
    assert export.main([logdir, str(out), "--run", "cnn", "--health-csv", "--layer", "conv2"]) == 0
    with open(out / "health.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["layer"] for r in rows} == {"conv2"} and len(rows) == 16
    assert export.main([logdir, str(out), "--run", "cnn", "--health-csv", "--layer", "conv7"]) == 1
    assert "--layer 'conv7' is no layer of the run" in capsys.readouterr().err
    assert export.main([logdir, str(out), "--run", "cnn", "--layer", "conv1", "--probe", "0",
                        "--contact-sheet", "--gif"]) == 0
    names = sorted(os.listdir(out / "cnn" / "activations" / "conv1"))
    assert names == ["contact_probe0.png", "epochs_probe0.gif"] + ["step_%06d_probe0.png" % s for s in range(16)]


def test_runs_are_read_one_at_a_time_and_only_the_chosen_ones(logdir, monkeypatch):
    """TensorBoard's loader keeps every event it loads, images too: the export
    loads one run, hands it over, and only then loads the next; a run left
    out by ``runs`` is not loaded at all, and is still named as a run."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

    loaded = []
    reload = pem.EventMultiplexer.Reload

    def counting(self):
        loaded.append(sorted(self.Runs()))
        return reload(self)

    monkeypatch.setattr(pem.EventMultiplexer, "Reload", counting)
    series = export.iter_series(logdir, kinds=("activations",))
    run, items = next(series)
    assert run == "cnn" and loaded == [["cnn"]]
    assert {meta.layer for meta, _ in items} == {"conv1", "pool1", "conv2", "flatten", "predictions"}
    assert all(sorted(steps) == list(range(16)) for _, steps in items)
    assert [r for r, _ in series] == ["mlp", "odd run <b>ü</b>"] and len(loaded) == 3
    assert all(len(runs) == 1 for runs in loaded)

    del loaded[:]
    catalog = export.Catalog()
    assert [r for r, _ in export.iter_series(logdir, kinds=("activations",), runs=["mlp"], catalog=catalog)] == ["mlp"]
    assert loaded == [["mlp"]]
    problems = catalog.unmatched(runs=["nope"])
    assert problems == ["--run 'nope' is no run in %s; its runs: 'cnn', 'mlp', 'odd run <b>ü</b>'" % logdir]
