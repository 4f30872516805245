"""Server-side batching of the development server: concurrent Predict requests run as one call.

With `keras-ser serve-local --enable_batching`, the requests that reach a
model version's signature at about the same time are queued and run
together: their rows are concatenated (inputs of different widths, such as
`waveform` rows of different lengths, padded with zeros, as TF Serving's
`pad_variable_length_inputs` does) and the signature runs once on the
merged batch; each request gets back its own rows of every output.

- **Length buckets.** A merged batch only holds requests of similar
  length: the longest is at most `length_bucket_ratio` times the shortest
  (the length of a request: the duration in its WAV headers for
  `audio_bytes`, the padded width for numeric inputs such as `waveform`).
  Padding costs the same compute as audio, so a 9 s utterance is not
  merged with 1 s ones; the others wait for the next batch. The oldest
  request always goes into the next batch, so no request waits forever.
- **Batch size.** At most `max_execution_batch_size` rows are merged; a
  request with more rows (up to the server's `max_batch_size`) runs alone.
- **Timeout.** Under concurrent load (the previous batch merged several
  requests, or requests were left waiting) a batch waits up to
  `batch_timeout_micros` after its oldest request arrived for more to join;
  a request that reaches an idle server runs at once, so one client alone
  waits for nothing.
- **Errors.** A batch that fails (one request's bad audio fails the whole
  graph call) is run again request by request, so the bad request gets its
  own message (row indices of its own batch) and the others their results.
  Requests the merged call could answer differently from a call alone run
  alone from the start: an empty batch, inputs with different row counts,
  a `num_samples` outside its own row, `audio_bytes` that are not a
  readable WAV file.
- **Queue.** At most `max_enqueued_batches * max_execution_batch_size`
  rows wait; further requests get UNAVAILABLE, as TF Serving's queue
  answers them.
- `num_batch_threads` batches run at the same time (each a graph call that
  uses TensorFlow's own thread pools).

Signatures whose rows depend on each other are never merged: the export's
`serve_speaker` (standardised by the statistics of its own batch, marked
`uses_speaker_audio` in `assets.extra/keras_ser.json`), and any signature
with an input or output that is not batch-first.

Example:

>>> params = BatchingParameters(max_execution_batch_size=8, batch_timeout_micros=2000)
>>> params.queue_rows
800
>>> round(wav_seconds(open("03a01Fa.wav", "rb").read()), 2)       # doctest: +SKIP
1.9
"""

import collections
import dataclasses
import logging
import struct
import threading
import time

import grpc

from serving.errors import ServingError

log = logging.getLogger("serving.batching")

# What the dev server uses when batching is on and nothing else is given
# (measured on the fusion export on 2 CPU cores: docs/serving.md, Batching).
DEFAULT_MAX_EXECUTION_BATCH_SIZE = 16
DEFAULT_BATCH_TIMEOUT_MICROS = 2000
DEFAULT_NUM_BATCH_THREADS = 2
DEFAULT_MAX_ENQUEUED_BATCHES = 100
DEFAULT_LENGTH_BUCKET_RATIO = 1.5


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """How the development server merges requests (TF Serving's `BatchingParameters` names where they exist).

    Args:
        max_execution_batch_size: int >= 1. Most rows in one merged call.
            Defaults to `16`.
        batch_timeout_micros: int >= 0. Longest wait, under load, for more
            requests to join a batch, counted from its oldest request's
            arrival. Defaults to `2000` (2 ms).
        num_batch_threads: int >= 1. Batches running at the same time
            (while one runs its LSTM steps, the other keeps the second
            core busy). Defaults to `2`.
        max_enqueued_batches: int >= 1. Queue depth, in batches of
            `max_execution_batch_size` rows. Defaults to `100`.
        pad_variable_length_inputs: bool. Merge inputs of different widths
            by zero-padding them (the keras-ser signatures ignore samples
            past `num_samples`); False merges only equal shapes. Defaults
            to `True`.
        length_bucket_ratio: float. Longest / shortest request length in
            one batch, at least 1; 0 merges any lengths. Defaults to `1.5`.

    Example:

    >>> BatchingParameters(num_batch_threads=0)
    Traceback (most recent call last):
    ...
    ValueError: num_batch_threads must be an integer >= 1. Received: num_batch_threads=0
    """

    max_execution_batch_size: int = DEFAULT_MAX_EXECUTION_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    num_batch_threads: int = DEFAULT_NUM_BATCH_THREADS
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    pad_variable_length_inputs: bool = True
    length_bucket_ratio: float = DEFAULT_LENGTH_BUCKET_RATIO

    def __post_init__(self):
        for name, low in (("max_execution_batch_size", 1), ("batch_timeout_micros", 0), ("num_batch_threads", 1),
                          ("max_enqueued_batches", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
        if not isinstance(self.pad_variable_length_inputs, bool):
            raise ValueError("pad_variable_length_inputs must be True or False. "
                             f"Received: pad_variable_length_inputs={self.pad_variable_length_inputs!r}")
        ratio = self.length_bucket_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (ratio == 0 or ratio >= 1):
            raise ValueError(f"length_bucket_ratio must be 0 (no buckets) or a number >= 1. "
                             f"Received: length_bucket_ratio={ratio!r}")

    @property
    def queue_rows(self):
        """Rows that may wait before new requests are refused."""
        return self.max_enqueued_batches * self.max_execution_batch_size

    @classmethod
    def from_file(cls, path, **overrides):
        """From a `batching.config` (`--batching_parameters_file`); `overrides` win over the file.

        Read: `max_execution_batch_size` (or else `max_batch_size`),
        `batch_timeout_micros`, `num_batch_threads`, `max_enqueued_batches`,
        `pad_variable_length_inputs`; `allowed_batch_sizes` is ignored (no
        fixed batch shapes are needed on the CPU).
        """
        from serving.config import read_batching_config

        parsed = read_batching_config(path)
        values = {}
        size = parsed.get("max_execution_batch_size", parsed.get("max_batch_size"))
        if size is not None:
            values["max_execution_batch_size"] = size
        for key in ("batch_timeout_micros", "num_batch_threads", "max_enqueued_batches", "pad_variable_length_inputs"):
            if key in parsed:
                values[key] = parsed[key]
        values.update(overrides)
        return cls(**values)


def wav_seconds(data):
    """Duration of WAV bytes from their header (declared data size), or None if they are not a readable WAV file.

    Only the RIFF chunks are read (nothing is decoded): enough to put a
    request in its length bucket.

    Example:

    >>> import io, wave
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as handle:
    ...     handle.setnchannels(2); handle.setsampwidth(2); handle.setframerate(8000)
    ...     handle.writeframes(bytes(4 * 4000))
    >>> wav_seconds(buffer.getvalue())
    0.5
    >>> wav_seconds(b"not a wav file") is None
    True
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    position, channels, rate, block = 12, None, None, None
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], struct.unpack("<I", data[position + 4:position + 8])[0]
        if chunk == b"fmt " and size >= 16 and position + 24 <= len(data):
            _, channels, rate, _, block = struct.unpack("<HHIIH", data[position + 8:position + 22])
        elif chunk == b"data":
            if not rate or not block or not channels:
                return None
            return size / block / rate
        position += 8 + size + (size & 1)
    return None


def request_length(inputs):
    """Length of a request for the length buckets, or None when it must run alone.

    Args:
        inputs: dict alias -> `tf.Tensor` (batch-first, already checked
            against the signature).

    Returns:
        float: the longest `audio_bytes` row in seconds (its WAV header) or,
        for numeric inputs, the elements per row (the padded width of
        `waveform`); the largest over the inputs. None: 0 rows, inputs
        with different row counts, `num_samples` outside `[0, width]` of
        its `waveform` row, or string rows that are not readable WAV files.
    """
    import tensorflow as tf

    rows = {int(tensor.shape[0]) for tensor in inputs.values()}
    if len(rows) != 1 or 0 in rows:
        return None
    length = 0.0
    for tensor in inputs.values():
        if tensor.dtype == tf.string:
            for value in tensor.numpy().ravel():
                seconds = wav_seconds(value)
                if seconds is None:
                    return None
                length = max(length, seconds)
        else:
            per_row = 1
            for size in tensor.shape[1:]:
                per_row *= int(size)
            length = max(length, float(per_row))
    waveform, num_samples = inputs.get("waveform"), inputs.get("num_samples")
    if waveform is not None and num_samples is not None and waveform.shape.rank == 2 and num_samples.shape.rank == 1:
        lengths = num_samples.numpy()
        if lengths.size and (lengths.min() < 0 or lengths.max() > int(waveform.shape[1])):
            return None  # alone, the graph says what is wrong; padded, the row would look valid
    return length


class _Task:
    __slots__ = ("feed", "rows", "length", "arrival", "done", "outputs", "error")

    def __init__(self, feed, rows, length):
        self.feed = feed
        self.rows = rows
        self.length = length
        self.arrival = time.monotonic()
        self.done = threading.Event()
        self.outputs = None
        self.error = None


class Batcher:
    """The queue and batch threads of one signature of one model version.

    Args:
        run: callable `feed -> dict alias -> numpy array` (all outputs,
            batch-first) that raises `serving.errors.ServingError`.
        params: `BatchingParameters`.
        name: str, for thread names and logs.

    `submit(feed)` blocks until the request's batch has run and returns its
    rows of every output (or raises its `ServingError`). `stats` counts
    batches, requests and rows, the largest merged batch (in requests),
    batches run again request by request (`retried`) and batches that
    waited for the timeout (`waited`).
    """

    def __init__(self, run, params, name="batcher"):
        self._run = run
        self.params = params
        self.name = name
        self._pending = collections.deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._forming = threading.Lock()
        self._threads = []
        self._stopped = False
        self._under_load = False
        self.stats = {"batches": 0, "requests": 0, "rows": 0, "largest": 0, "retried": 0, "waited": 0}

    def submit(self, feed):
        """Runs `feed` (dict alias -> tf.Tensor) in the next fitting batch; returns its outputs."""
        length = request_length(feed)
        rows = int(next(iter(feed.values())).shape[0]) if feed else 0
        task = _Task(feed, rows, length)
        with self._cond:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the model version is being unloaded")
            if self._pending_rows + rows > self.params.queue_rows and self._pending:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full")
            self._pending.append(task)
            self._pending_rows += rows
            if not self._threads:
                for index in range(self.params.num_batch_threads):
                    thread = threading.Thread(target=self._loop, name=f"{self.name}-batch-{index}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def stop(self):
        """Runs what is queued, then ends the batch threads."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=60)

    # --- forming batches ----------------------------------------------------

    def _mergeable(self, first, task, rows, low, high):
        if task.length is None or rows + task.rows > self.params.max_execution_batch_size:
            return False
        if not self.params.pad_variable_length_inputs:
            if any(task.feed[alias].shape[1:] != first.feed[alias].shape[1:] for alias in first.feed):
                return False
        ratio = self.params.length_bucket_ratio
        if ratio:
            low, high = min(low, task.length), max(high, task.length)
            if high > ratio * low:
                return False
        return True

    def _select(self):
        """The next batch: the oldest request, then every later one that fits its bucket, in arrival order."""
        first = self._pending[0]
        batch = [first]
        if first.length is None or first.rows >= self.params.max_execution_batch_size:
            return batch
        rows, low, high = first.rows, first.length, first.length
        for task in list(self._pending)[1:]:
            if self._mergeable(first, task, rows, low, high):
                batch.append(task)
                rows += task.rows
                low, high = min(low, task.length), max(high, task.length)
                if rows >= self.params.max_execution_batch_size:
                    break
        return batch

    def _next_batch(self):
        with self._cond:
            while not self._pending:
                if self._stopped:
                    return None
                self._cond.wait()
            timeout = self.params.batch_timeout_micros / 1e6
            wait = self._under_load and timeout > 0
            deadline = self._pending[0].arrival + timeout
            waited = False
            while True:
                batch = self._select()
                rows = sum(task.rows for task in batch)
                remaining = deadline - time.monotonic()
                if (not wait or self._stopped or remaining <= 0 or batch[0].length is None
                        or rows >= self.params.max_execution_batch_size):
                    break
                waited = True
                self._cond.wait(remaining)
            self.stats["waited"] += waited
            for task in batch:
                self._pending.remove(task)
                self._pending_rows -= task.rows
            self._under_load = len(batch) > 1 or bool(self._pending)
            return batch

    def _loop(self):
        while True:
            with self._forming:  # one thread forms a batch at a time; the others run theirs
                batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    # --- running them ---------------------------------------------------------

    def _execute(self, batch):
        stats = self.stats
        with self._cond:
            stats["batches"] += 1
            stats["requests"] += len(batch)
            stats["rows"] += sum(task.rows for task in batch)
            stats["largest"] = max(stats["largest"], len(batch))
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        try:
            outputs = self._run(_merge([task.feed for task in batch]))
            offset = 0
            parts = []
            for task in batch:
                parts.append({alias: value[offset:offset + task.rows] for alias, value in outputs.items()})
                offset += task.rows
            if any(len(value) != offset for value in outputs.values()):
                raise ValueError("an output is not batch-first")
        except Exception as error:  # noqa: BLE001 - any failure: each request alone gives its own answer
            with self._cond:
                stats["retried"] += 1
            log.debug("batch of %d requests failed (%s); running them one by one", len(batch), error)
            for task in batch:
                self._run_alone(task)
            return
        for task, part in zip(batch, parts):
            task.outputs = part
            task.done.set()

    def _run_alone(self, task):
        try:
            task.outputs = self._run(task.feed)
        except ServingError as error:
            task.error = error
        except Exception as error:  # noqa: BLE001 - never leave a client waiting
            task.error = ServingError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            task.done.set()


def _merge(feeds):
    """Concatenates the requests' inputs along the batch axis, zero-padding every other axis to the widest."""
    import tensorflow as tf

    merged = {}
    for alias in feeds[0]:
        tensors = [feed[alias] for feed in feeds]
        rank = tensors[0].shape.rank
        widths = [max(int(t.shape[axis]) for t in tensors) for axis in range(1, rank)]
        padded = []
        for tensor in tensors:
            extra = [[0, 0]] + [[0, width - int(tensor.shape[axis + 1])] for axis, width in enumerate(widths)]
            padded.append(tf.pad(tensor, extra) if any(after for _, after in extra) else tensor)
        merged[alias] = tf.concat(padded, axis=0)
    return merged
