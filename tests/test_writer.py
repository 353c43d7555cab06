"""tb_layerview.writer: event files written without TensorFlow read back exactly like TensorFlow's."""

import numpy as np
import pytest

from tb_layerview import metadata, summary, writer
from helpers import read_series


def _write_all(rng_seed):
    rng = np.random.default_rng(rng_seed)
    for step in range(3):
        summary.activations("conv1", rng.random((2, 5, 5, 3)), step=step, layer_class="Conv2D")
        summary.activations('odd "name" ü', rng.random((2, 7)), step=step, layer_index=1)
        summary.filters("conv1", rng.random((3, 3, 3, 4)), step=step)
        summary.channel_stats([("conv1", "relu", rng.random((9, 3)))], step=step)
        summary.predictions(rng.random((2, 4)), step=step)
    summary.config({"layers": []}, step=0)


def test_event_writer_files_read_back_like_tensorflows(tmp_path):
    """The same summaries through tf.summary and through EventWriter: identical series, metadata and blobs."""
    import tensorflow as tf

    tf_writer = tf.summary.create_file_writer(str(tmp_path / "tf"))
    with tf_writer.as_default():
        _write_all(0)
    tf_writer.close()
    tb_writer = writer.EventWriter(str(tmp_path / "tb"))
    with writer.writing_to(tb_writer):
        _write_all(0)
    tb_writer.close()
    series = read_series(str(tmp_path))
    assert set(series["tf"]) == set(series["tb"]) and len(series["tf"]) == 6
    for tag, s in series["tf"].items():
        other = series["tb"][tag]
        assert other["meta"] == s["meta"], tag
        assert other["steps"] == s["steps"], tag


def test_writing_without_tensorflow_needs_an_explicit_step(tmp_path):
    """Outside TensorFlow there is no global step: a missing step is a clear error."""
    w = writer.EventWriter(str(tmp_path / "run"))
    with writer.writing_to(w), pytest.raises(ValueError, match="step is required when writing without"
                                                                   " TensorFlow; got None"):
        summary.predictions(np.ones((1, 2)))
    w.close()


def test_an_unwritable_log_dir_is_refused_with_its_name(tmp_path):
    """check_writable raises OSError naming the directory."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="LayerView cannot write to log_dir '%s/sub'" % blocker):
        writer.check_writable(str(blocker / "sub"))


def test_metadata_is_written_once_per_tag_and_event_file_and_every_step_still_reads_back(tmp_path):
    """As TensorFlow's FileWriter does: only each tag's first value in a file carries the summary
    metadata (both loaders keep the first); a second file of the same run carries it again; the
    data provider reads every step of every file with the plugin's metadata."""
    from tensorboard.backend.event_processing import event_file_loader

    run = tmp_path / "run"
    for first_step in (0, 3):  # a fit, then a second fit continuing the run in a new file
        w = writer.EventWriter(str(run))
        with writer.writing_to(w):
            for step in range(first_step, first_step + 3):
                summary.activations("conv1", np.ones((1, 4, 4, 2)) * step, step=step)
                summary.predictions(np.ones((1, 3)), step=step)
        w.close()
    files = sorted(run.glob("events.out.tfevents.*"))
    assert len(files) == 2
    for path in files:
        with_meta = {}
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                with_meta.setdefault(value.tag, []).append(value.HasField("metadata"))
        assert with_meta == {tag: [True, False, False] for tag in with_meta} and len(with_meta) == 2
    series = read_series(str(tmp_path))["run"]
    assert {tag: sorted(s["steps"]) for tag, s in series.items()} == {tag: list(range(6)) for tag in series}
    assert all(s["meta"] is not None for s in series.values())


def test_one_event_gathers_a_steps_values_and_both_loaders_read_them_like_separate_events(tmp_path):
    """Inside one_event, the values of that step become one event (what keeps the Python loader's
    memory near the bytes on disk); a value at another step is written on its own; every value reads
    back through the data provider, and an exception inside the block loses nothing."""
    from tensorboard.backend.event_processing import event_file_loader

    run = tmp_path / "run"
    w = writer.EventWriter(str(run))
    with writer.writing_to(w):
        for step in range(3):
            with w.one_event(step):
                summary.activations("conv1", np.ones((2, 4, 4, 2)) * step, step=step)
                summary.activations("dense", np.ones((2, 5)) * step, step=step)
                summary.predictions(np.ones((2, 3)), step=step + 10)  # another step: its own event
        with pytest.raises(RuntimeError), w.one_event(3):
            summary.activations("conv1", np.ones((2, 4, 4, 2)), step=3)
            raise RuntimeError("a failing item")
    w.close()
    (path,) = run.glob("events.out.tfevents.*")
    events = [(e.step, sorted(v.tag for v in e.summary.value))
              for e in event_file_loader.EventFileLoader(str(path)).Load() if e.HasField("summary")]
    conv, dense, pred = (metadata.tag_for(metadata.KIND_ACTIVATIONS, "conv1"),
                         metadata.tag_for(metadata.KIND_ACTIVATIONS, "dense"), metadata.tag_for(metadata.KIND_PREDICTIONS))
    assert events == [(10, [pred]), (0, sorted([conv, dense])), (11, [pred]), (1, sorted([conv, dense])),
                      (12, [pred]), (2, sorted([conv, dense])), (3, [conv])]
    series = read_series(str(tmp_path))["run"]
    assert sorted(series[conv]["steps"]) == [0, 1, 2, 3] and sorted(series[dense]["steps"]) == [0, 1, 2]
    assert sorted(series[pred]["steps"]) == [10, 11, 12]


def test_records_carry_the_checksums_tensorboards_own_reader_checks(tmp_path):
    """The C CRC32C gives the check values of the standard and of TensorBoard's pure-Python one;
    TensorBoard's record reader, which checks both checksums of every record, reads the file back,
    and refuses it once one byte of a record changed."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

    assert writer._crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert writer.masked_crc32c(b"123456789") == 3347755237
    assert writer.masked_crc32c(b"") == 2726488792
    rng = np.random.default_rng(0)
    for n in (1, 7, 100, 4096):
        data = rng.bytes(n)
        assert writer.masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data), n

    w = writer.EventWriter(str(tmp_path / "run"))
    with writer.writing_to(w):
        for step in range(3):
            summary.activations("conv1", rng.random((2, 6, 6, 3)), step=step)
    w.close()
    w.close()  # a second close does nothing

    def records(path):
        reader, out = pywrap_tensorflow.PyRecordReader_New(path), []
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                return out
            out.append(event_pb2.Event.FromString(reader.record()))

    events = records(w.path)
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events[1:]] == [0, 1, 2]
    raw = bytearray(open(w.path, "rb").read())
    raw[len(raw) // 2] ^= 1
    open(w.path, "wb").write(bytes(raw))
    with pytest.raises(errors.DataLossError, match="crc32 check"):
        records(w.path)
    with pytest.raises(ValueError, match="is closed; got an event at step 4"):
        w.write("x", [b"1"], 4, None)


def test_logged_steps_reads_each_events_step_from_its_first_bytes(tmp_path):
    """The steps holding summaries, from the records' framing and the events' first bytes: step 0 (which
    protobuf leaves unwritten), multi-byte steps, TensorFlow's files as well as EventWriter's; the file
    version event is no step; a record cut short ends its file's scan; an unreadable file gives None.
    The second file opened in the same second sorts after the first, as TensorBoard reads them."""
    import tensorflow as tf

    run = tmp_path / "run"
    files = []
    for steps in ((0, 5), (300, 70000, 2 ** 40)):
        w = writer.EventWriter(str(run))
        with writer.writing_to(w):
            for step in steps:
                summary.predictions(np.ones((2, 3)), step=step)
        w.close()
        files.append(w.path)
    assert sorted(files) == files and writer.layerview_files(str(run)) == [f.split("/")[-1] for f in files]
    names = writer.layerview_files(str(run))
    assert writer.logged_steps(str(run), names) == {0, 5, 300, 70000, 2 ** 40}
    with open(files[1], "r+b") as f:  # the last record loses its end, as when a run is killed mid-write
        f.truncate(f.seek(0, 2) - 3)
    assert writer.logged_steps(str(run), names) == {0, 5, 300, 70000}
    tf_dir = tmp_path / "tf"
    tf_writer = tf.summary.create_file_writer(str(tf_dir))
    with tf_writer.as_default():
        summary.predictions(np.ones((2, 3)), step=7)
    tf_writer.close()
    tf_files = [n for n in tf.io.gfile.listdir(str(tf_dir))]
    assert writer.logged_steps(str(tf_dir), tf_files) == {7}
    assert writer.logged_steps(str(run), ["missing"]) is None


def test_files_opened_within_a_second_sort_in_the_order_they_were_opened(tmp_path, monkeypatch):
    """TensorBoard reads a run's files in name order, and its Python loader never goes back to a name
    before the file it reads. The tenth and eleventh files a process opens in one second used to be
    named ...9.layerview and ...10.layerview, which sort the other way round."""
    import itertools

    monkeypatch.setattr(writer, "_FILE_NUMBERS", itertools.count(9))
    opened = []
    for _ in range(2):
        w = writer.EventWriter(str(tmp_path))
        w.close()
        opened.append(w.path)
    assert sorted(opened) == opened, opened


def test_an_outputs_prediction_records_are_of_one_type_whatever_each_probes_value():
    """A one-value output reads as a probability ("binary") only if it is of a float or bool dtype and
    every finite value of it is within [0, 1]. The type was decided per probe: an argmax head's class
    index 1 was a probability of class 1 and its index 2 a value, and a score of 0.5 beside one of 1.7
    was a probability; the panel showed one output both ways in one step."""
    from tb_layerview import summary

    outputs = {"p": np.array([[0.2], [0.9]], np.float32), "index": np.array([1, 2], np.int32),
               "flag": np.array([[True], [False]]), "nan_p": np.array([[np.nan], [0.3]], np.float32),
               "wide": np.array([[0.5], [1.7]], np.float32)}
    records = summary.prediction_record(outputs)
    kinds = {name: [r["outputs"][name]["type"] for r in records] for name in outputs}
    assert kinds == {"p": ["binary", "binary"], "index": ["values", "values"], "flag": ["binary", "binary"],
                     "nan_p": ["values", "binary"], "wide": ["values", "values"]}, kinds
    assert [r["outputs"]["p"]["predicted"] for r in records] == [0, 1]
    assert [r["outputs"]["index"]["values"] for r in records] == [[1.0], [2.0]]
    assert records[1]["outputs"]["nan_p"] == {"type": "binary", "value": pytest.approx(0.3), "predicted": 0}


def test_class_probabilities_at_every_position_are_summarised_as_a_map_of_classes():
    """A segmentation head (a softmax at every pixel) or a tagger's tokens: which classes the positions
    take, and with a label map (class ids, (H, W, 1) or one-hot) the share of positions right. Such an
    output was recorded as its first 64 raw probabilities. An RGB image in [0, 1] (no softmax) and a
    regression head stay values."""
    from tb_layerview import summary

    probs = np.zeros((2, 2, 4, 3), np.float32)
    probs[..., 2] = 1.0
    probs[0, 0, :2] = [0.1, 0.8, 0.1]  # two positions of class 1
    probs[1] = [0.5, 0.3, 0.2]  # every position of class 0
    ids = np.full((2, 2, 4), 2)
    records = summary.prediction_record({"mask": probs}, class_names=["sky", "road", "car"], labels=ids)
    first = records[0]["outputs"]["mask"]
    assert first == {"type": "positions", "shape": [2, 4], "classes": 3, "top": [[2, 0.75], [1, 0.25]],
                     "names": ["car", "road"], "accuracy": 0.75}, first
    assert records[1]["outputs"]["mask"]["top"] == [[0, 1.0]] and records[1]["outputs"]["mask"]["accuracy"] == 0.0
    for labels in (ids[..., None], np.eye(3, dtype=np.float32)[ids]):
        assert summary.prediction_record({"mask": probs}, labels=labels)[0]["outputs"]["mask"]["accuracy"] == 0.75
    assert "accuracy" not in summary.prediction_record({"mask": probs})[0]["outputs"]["mask"]
    rgb = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
    assert summary.prediction_record({"image": rgb})[0]["outputs"]["image"]["type"] == "values"
    assert summary.prediction_record({"mask": probs}, regression=("mask",))[0]["outputs"]["mask"]["type"] == "values"
