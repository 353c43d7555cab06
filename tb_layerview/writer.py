"""Writing event files with TensorBoard's own pieces, without TensorFlow.

:class:`EventWriter` builds each ``Event`` from TensorBoard's protos and
appends it to an event file in the TFRecord framing TensorFlow's summary
writer uses (a ``file_version`` event first, then events of summaries).
Inside :meth:`EventWriter.one_event`, the values of one step go into a single
event, which both of TensorBoard's loaders read like separate ones. Files go
through ``tensorboard.compat.tf.io.gfile``: the real ``tf.io.gfile`` when
TensorFlow is installed (every scheme it knows, ``gs://``, ``s3://``,
``ram://``...), TensorBoard's own file systems otherwise (local paths,
``s3://`` with boto3, and any fsspec URL once its implementation is
installed, e.g. ``gcsfs`` for ``gs://``).

A local path goes through TensorBoard's own file layer unless TensorFlow is
already imported: on JAX or PyTorch with TensorFlow installed beside them,
reaching ``tf.io.gfile`` would import TensorFlow for nothing that local
files need (about 3 s once per process, charged to the first step's time
budget). Paths with a scheme (``gs://``...) still reach TensorFlow's
file systems where it is installed (:func:`gfile`).

Records are written on the caller's thread, which for the ``LayerView``
callback is its background writer: TensorBoard's ``EventFileWriter`` would
hand them to a thread of its own, whose CPU time the budget could not see,
and checksum them in pure Python (about 9 ms per 100 KB, holding the GIL the
training loop needs). The CRC32C here is ``google-crc32c``'s C one (well under
1 ms per MB).

The ``LayerView`` callback always writes this way; the ``tf.summary``-style
ops of :mod:`tb_layerview.summary` write into it inside :func:`writing_to`,
and into TensorFlow's default writer otherwise.
"""

import contextlib
import itertools
import os
import socket
import struct
import sys
import threading
import time

try:
    from google_crc32c import value as _crc32c
except ImportError:  # the pure-Python one TensorBoard reads with when TensorFlow is absent
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as _crc32c

_ACTIVE = threading.local()
# Event files opened by this process, so that two opened within the same
# second get different names.
_FILE_NUMBERS = itertools.count()


def masked_crc32c(data):
    """The masked CRC32C of a TFRecord's length or data field, as TFRecord readers check it."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tf_record(data):
    """``data`` framed as one TFRecord: length, its masked CRC, data, its masked CRC."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


class EventWriter:
    """An event file in ``logdir``, written without TensorFlow.

    Example::

        from tb_layerview import summary, writer

        w = writer.EventWriter("logs/run1")
        with writer.writing_to(w):
            summary.activations("conv1", outputs, step=3)
        w.close()
    """

    def __init__(self, logdir):
        from tensorboard.compat.proto import event_pb2

        self.logdir = logdir
        files = gfile(logdir)
        files.makedirs(logdir)
        # TensorBoard reads every file whose name holds "tfevents"; the suffix
        # keeps these apart from a TensorFlow or TensorBoard writer's files
        # opened by the same process in the same second. Its loaders read a
        # directory's files in name order, and the Python one never goes back
        # to a name before the file it reads: the number is zero-padded, so
        # that a tenth file opened within a second sorts after the ninth.
        self.path = os.path.join(logdir, "events.out.tfevents.%010d.%s.%d.%06d%s" % (
            time.time(), socket.gethostname(), os.getpid(), next(_FILE_NUMBERS), FILE_SUFFIX))
        self._file = files.GFile(self.path, "wb")
        self._tags_seen = set()
        self._lock = threading.Lock()
        self._gathering = None  # (step, [values]) inside one_event
        self._add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2",
                                  source_metadata=event_pb2.SourceMetadata(writer="tb_layerview")))
        self.flush()

    def _add(self, event):
        record = tf_record(event.SerializeToString())
        with self._lock:
            if self._file is None:
                raise ValueError("the event file %r is closed; got an event at step %d" % (self.path, event.step))
            self._file.write(record)

    def write(self, tag, values, step, metadata):
        """Writes a rank-1 string tensor of ``values`` (bytes) at ``step``."""
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

        # The proto built as make_tensor_proto builds a list of bytes, without
        # its trip through numpy (a tenth of a millisecond per blob list).
        values = list(values)
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=values,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]))
        self.write_value(summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata), step,
                         event_pb2, summary_pb2)
        return True

    def scalar(self, tag, value, step, metadata):
        """Writes a float32 scalar at ``step`` (TensorBoard's Scalars dashboard)."""
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.util import tensor_util

        import numpy as np

        tensor = tensor_util.make_tensor_proto(np.float32(value))
        self.write_value(summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata), step,
                         event_pb2, summary_pb2)
        return True

    def write_value(self, value, step, event_pb2, summary_pb2):
        # Both of TensorBoard's loaders keep the first metadata of a tag and
        # ignore the rest, as TensorFlow's FileWriter strips it from later
        # values: repeating it only costs bytes on disk and in TensorBoard's
        # memory (where the Python loader keeps each event whole). Each event
        # file still carries it once per tag, so a restarted run stays readable.
        with self._lock:
            if value.tag in self._tags_seen:
                value.ClearField("metadata")
            else:
                self._tags_seen.add(value.tag)
            gathering = self._gathering
            if gathering is not None and gathering[0] == int(step):
                gathering[1].append(value)
                return
        event = event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=[value]))
        self._add(event)

    @contextlib.contextmanager
    def one_event(self, step):
        """Writes the values of ``step`` written inside the block as one event.

        TensorBoard's Python loader (``--load_fast=false``) keeps every event
        as a parsed protobuf message in an arena of its own, so a step of a
        few hundred small values costs about a third more memory than its
        bytes when each value is an event, and little more than its bytes as
        one event. Values at another step are written as they come. If the
        block raises, what it gathered is still written.

        Example::

            w = writer.EventWriter("logs/run1")
            with writer.writing_to(w), w.one_event(3):
                summary.activations("conv1", outputs, step=3)
                summary.predictions(scores, step=3)   # one event holding both
        """
        from tensorboard.compat.proto import event_pb2, summary_pb2

        with self._lock:
            outer, self._gathering = self._gathering, (int(step), [])
        try:
            yield self
        finally:
            with self._lock:
                _, values = self._gathering
                self._gathering = outer
            if values:
                self._add(event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary_pb2.Summary(value=values)))

    def flush(self):
        """Hands what was written to the file system."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self):
        """Flushes and closes the file; closing twice does nothing."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                self._file.close()
                self._file = None


def active():
    """The :class:`EventWriter` this thread writes into, or None."""
    return getattr(_ACTIVE, "writer", None)


@contextlib.contextmanager
def writing_to(event_writer):
    """Makes the summary ops of this thread write into ``event_writer``."""
    previous = active()
    _ACTIVE.writer = event_writer
    try:
        yield event_writer
    finally:
        _ACTIVE.writer = previous


def gfile(path):
    """The ``gfile`` module that reaches ``path``.

    TensorFlow's ``tf.io.gfile`` where TensorFlow is imported already, or
    where ``path`` has a scheme (``gs://``, ``s3://``, ``hdfs://``...) and
    TensorFlow is installed; TensorBoard's stand-in for it otherwise (local
    files, and fsspec URLs without TensorFlow). Both have the same calls.

    Example::

        files = gfile("logs/run1")
        files.makedirs("logs/run1")
    """
    if "tensorflow" in sys.modules or "://" in str(path):
        from tensorboard.compat import tf

        return tf.io.gfile
    from tensorboard.compat.tensorflow_stub.io import gfile as stand_in

    return stand_in


def _remove(path):
    """Deletes one file: TensorFlow's gfile has ``remove``, TensorBoard's stand-in
    for it does not, so local paths and fsspec URLs are handled here."""
    files = gfile(path)
    if hasattr(files, "remove"):
        files.remove(path)
    elif "://" not in path or path.startswith("file://"):
        os.remove(path[len("file://"):] if path.startswith("file://") else path)
    else:
        import fsspec  # the stand-in reaches other URLs only through fsspec, so it is installed

        fs, fs_path = fsspec.core.url_to_fs(path)
        fs.rm(fs_path)


#: The end of the names of the event files :class:`EventWriter` writes.
FILE_SUFFIX = ".layerview"


def layerview_files(logdir):
    """Names of the event files an :class:`EventWriter` wrote in ``logdir``
    (an earlier fit's), sorted; empty when there are none or it cannot be listed."""
    try:
        names = gfile(logdir).listdir(logdir)
    except Exception:  # noqa: BLE001 - a new or unlistable directory holds no earlier log we can see
        return []
    return sorted(n.rstrip("/") for n in names if "tfevents" in n and n.rstrip("/").endswith(FILE_SUFFIX))


def logged_steps(logdir, names):
    """The steps at which the event files ``names`` in ``logdir`` hold summaries.

    Only each record's framing and the first bytes of its event are read:
    an ``Event`` serialises its wall time and step before its summary, so a
    log of hundreds of megabytes is scanned in milliseconds where the file
    system can seek. A record cut short (a run killed while writing) ends the
    scan of its file, as it ends TensorBoard's reading.

    Returns:
      set of int, or None when a file cannot be read.

    Example::

        logged_steps("logs/run1", layerview_files("logs/run1"))  # {0, 1, 2, 3}
    """
    files = gfile(logdir)
    steps = set()
    try:
        for name in names:
            path = logdir.rstrip("/") + "/" + name
            size = files.stat(path).length
            with files.GFile(path, "rb") as f:
                seek = getattr(f, "seek", None)
                offset = 0
                while offset + 12 <= size:
                    head = f.read(12)
                    if len(head) < 12 or struct.pack("<I", masked_crc32c(head[:8])) != head[8:]:
                        break
                    (length,) = struct.unpack("<Q", head[:8])
                    end = offset + 12 + length + 4
                    if end > size:
                        break
                    start = f.read(min(length, 32))
                    if seek is not None:
                        seek(end)
                    else:  # TensorBoard's stand-in gfile (no TensorFlow) only reads on
                        f.read(end - offset - 12 - len(start))
                    offset = end
                    step = _summary_step(start)
                    if step is not None:
                        steps.add(step)
    except Exception:  # noqa: BLE001 - unreadable: the caller cannot tell which steps are held
        return None
    return steps


def _summary_step(start):
    """The step of a serialised ``Event`` from its first bytes, if it holds a
    summary (not the file version or another kind of event); else None."""
    i, step = 0, 0
    while i < len(start):
        tag = start[i]
        if tag == 0x09:  # field 1, wall_time: a little-endian double
            i += 9
        elif tag == 0x10:  # field 2, step: a varint
            step, shift, i = 0, 0, i + 1
            while i < len(start):
                byte = start[i]
                step |= (byte & 0x7F) << shift
                shift, i = shift + 7, i + 1
                if not byte & 0x80:
                    break
            if step >= 1 << 63:  # a negative int64
                step -= 1 << 64
        else:
            return step if tag == 0x2A else None  # field 5, summary
    return None


def check_writable(logdir):
    """Creates ``logdir`` and writes a file into it, or raises OSError naming the directory."""
    files = gfile(logdir)
    probe_file = logdir.rstrip("/") + "/.tb_layerview_write_check"
    try:
        files.makedirs(logdir)
        with files.GFile(probe_file, "w") as f:
            f.write("ok")
        _remove(probe_file)
    except Exception as e:
        raise OSError("LayerView cannot write to log_dir %r: %s" % (logdir, e)) from None
