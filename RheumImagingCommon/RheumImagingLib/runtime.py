"""Where the bundles' networks run: ONNX Runtime on CPU when it is installed, else eager PyTorch.

Why: on CPU, ONNX Runtime ran the networks 1.5-2x faster than eager PyTorch and faster than a
frozen TorchScript module, with the same outputs to 1e-6 (``make bench``, docs/benchmarks.md).
A bundle trained by this version carries its ONNX graphs: the trainer calls :func:`store` when training
ends, which writes ``models/<weights>.onnx`` beside each checkpoint with a record of the checkpoint's sha256,
and scoring uses that file as it is (also when the trainer quantised it to int8, see :func:`store`), without
building the eager network at all (:func:`load`). A bundle
without them (trained before, or weights downloaded alone) is exported once per weights file (the key is the
checkpoint's sha256) into a cache folder reused by later runs. Without onnxruntime, when an export fails, or on a
GPU device, the eager network runs and a log line says so; results are the same either way (within the
documented tolerance for an int8 graph).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import InputError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "torch")
OPSET = 17
PRECISION = "precision"  # the ONNX metadata key saying a stored graph was quantised ("int8")


def cache_dir() -> Path:
    """``$RHEUM_IMAGING_CACHE``, else ``$XDG_CACHE_HOME/slicer-rheum-imaging`` (``~/.cache`` by default)."""
    env = os.environ.get("RHEUM_IMAGING_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "slicer-rheum-imaging"


def runtime_name(network) -> str:
    """What runs ``network``, with its version (for provenance)."""
    import torch

    from .onnx_network import OnnxRuntimeNetwork

    network = network.running() if isinstance(network, OnnxRuntimeNetwork) else network
    if isinstance(network, OnnxRuntimeNetwork):
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}" + (" int8" if network.precision == "int8" else "")
    return f"torch {torch.__version__}"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def stored_path(checkpoint) -> Path:
    """Where a trained bundle keeps the ONNX graph of the weights file ``checkpoint``: beside it, ``.onnx``."""
    return Path(checkpoint).with_suffix(".onnx")


def _record_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".json")


def _record(network_name: str, input_shape: tuple, key: str) -> dict:
    return {"key": key, "network": network_name, "input_shape": list(input_shape), "opset": OPSET}


def _matches(record: dict, input_shape: tuple, key: str) -> bool:
    """Whether a stored graph's record is of these weights (checkpoint sha256), this input shape and this opset
    (the record's network name says what was exported, for people)."""
    return (record.get("key"), record.get("input_shape"), record.get("opset")) == (key, list(input_shape), OPSET)


def _file_stamp(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def store(network, input_shape, *, checkpoint, key: str | None = None, calibration=None) -> Path:
    """Export ``network`` (the weights of ``checkpoint`` loaded) to ``stored_path(checkpoint)`` with a record
    (``<graph>.json``) of the checkpoint's sha256 (``key``, computed when not given), size and modification time,
    and of the input shape; :func:`load` then runs the graph as it is. ``calibration``: input batches (float arrays
    ``(N, *input_shape)``) to quantise the graph's convolutions statically to int8 (:func:`_quantise`); the record
    says so. With ONNX Runtime installed the graph is stored optimised for its CPU provider (:func:`_optimised`).
    Written to a temporary name first, so an interrupted export leaves no file that looks complete."""
    from .bundle import sha256_of

    checkpoint = Path(checkpoint)
    path = stored_path(checkpoint)
    model = _export(network.eval(), tuple(input_shape))
    record = {**_record(type(network).__qualname__, tuple(input_shape), key or sha256_of(checkpoint)),
              "checkpoint": _file_stamp(checkpoint)}
    if calibration is not None:
        model, record["int8"] = _quantise(model, calibration)
    ort = _onnxruntime()
    if ort is not None:
        model = _optimised(ort, model)
        record["optimised"] = f"onnxruntime {ort.__version__} extended, CPUExecutionProvider"
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(model)
    os.replace(partial, path)
    _record_path(path).write_text(json.dumps(record, indent=1) + "\n")
    return path


def store_or_warn(network, input_shape, *, checkpoint, what: str, key: str | None = None) -> Path | None:
    """:func:`store` at the end of a training, which must never lose the training to a failed export: None and a
    warning naming ``what`` instead (scoring then exports once into its cache, or runs eager)."""
    try:
        return store(network, input_shape, checkpoint=checkpoint, key=key)
    except Exception as exc:  # noqa: BLE001 (any exporter failure; the weights are what training made)
        log.warning("no ONNX graph stored for %s (%s: %s); scoring will export it", what, exc.__class__.__name__, exc)
        return None


def _quantise(model: bytes, calibration) -> tuple[bytes, dict]:
    """``model`` with its convolutions statically quantised to int8 by ONNX Runtime (QDQ; weights int8 per
    channel, activations uint8 with MinMax ranges from the ``calibration`` batches), and how.

    Why: on a CPU with AVX-512 VNNI the texture folds ran 4-6x faster than in fp32 (docs/benchmarks.md). Only
    convolutions: what follows them (the texture encoding's softmax and L2 norm, classifiers) stays fp32. The
    graph is first pre-processed (shape inference, batch norms folded into the convolutions), without which the
    quantised graph was no faster."""
    import tempfile

    import numpy as np
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [{"input": np.ascontiguousarray(b, dtype=np.float32)} for b in calibration]
    if not batches:
        raise ValueError("no calibration inputs to quantise with")

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.pending = iter(batches)

        def get_next(self):
            return next(self.pending, None)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")
        fp32, prepared, int8 = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        fp32.write_bytes(model)
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(str(prepared), str(int8), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
        quantised = onnx.load(str(int8))
    onnx.helper.set_model_props(quantised, {PRECISION: "int8"})  # the graph says what it is (runtime_name)
    how = {"format": "QDQ", "quantised": "Conv", "weights": "int8 per channel", "activations": "uint8, MinMax",
           "calibration_inputs": sum(len(b["input"]) for b in batches)}
    return quantised.SerializeToString(), how


def _optimised(ort, model: bytes) -> bytes:
    """``model`` with ONNX Runtime's basic and extended graph optimisations for its CPU provider already applied:
    constants folded, redundant nodes removed, quantise/dequantise pairs fused into quantised operators,
    convolutions fused with their activations. The outputs are the same to the bit; the graph then holds a few
    ONNX Runtime CPU operators (com.microsoft FusedConv, FusedMatMul, QLinearAdd), so it is a graph for ONNX
    Runtime's CPU provider, which is where the project runs it; the checkpoint stays the bundle's portable weights,
    and a graph a runtime cannot read is exported again from it (:func:`load`). Only the hardware-specific layout
    optimisations are left to each machine's session.

    Why: each session then starts with less to do. A fresh process's seven radiograph sessions (five int8 texture
    folds, two contour networks) were ready in 255-276 ms with the basic optimisations stored, 341-383 ms with
    none; with the extended ones a texture fold's session started in 17 against 26 ms, the Curve-GCN's in 35 against
    76 ms, and each fold's first run took 21 against 35 ms (docs/benchmarks.md)."""
    import tempfile

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return Path(options.optimized_model_filepath).read_bytes()


@contextlib.contextmanager
def _quiet_root_logger():
    """ONNX Runtime's quantisation tools log advice on the root logger; keep it out of the user's console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _stored_record(checkpoint: Path) -> dict | None:
    try:
        return json.loads(_record_path(stored_path(checkpoint)).read_text())
    except (OSError, ValueError):
        return None


def checkpoint_sha256(checkpoint, record: dict | None = None) -> str:
    """The sha256 of ``checkpoint``: the stored graph's record of it while the file's size and modification time
    are still those recorded (as ``make`` and git trust a file's stamp: the five texture folds' 45 MB each took
    longer to hash than to load their graphs), else hashed."""
    from .bundle import sha256_of

    checkpoint = Path(checkpoint)
    record = _stored_record(checkpoint) if record is None else record
    if record and record.get("key") and record.get("checkpoint") == _file_stamp(checkpoint):
        return record["key"]
    return sha256_of(checkpoint)


def load(build, checkpoint, input_shape, *, label: str, runtime: str = "auto", device="cpu",
         state_key: str | None = None, threads: int | None = None):
    """``(module to call, checkpoint sha256)`` for the weights in ``checkpoint``.

    When ONNX Runtime runs them and the bundle stored their graph (:func:`store`), the graph is used as it is: the
    eager network is never built, and the session is created in the background while the caller goes on (parsing
    the next bundle, reading the first image; a fresh process's first score came 2-3x sooner). Else ``build()``
    makes the network, the weights are loaded into it safely (``weights_only=True``, ``state_key``: their entry in
    a checkpoint dictionary) and :func:`prepare` decides. ``threads``: ONNX Runtime's intra-op threads (default:
    its own choice, one per core).
    """
    from .bundle import load_checkpoint

    if runtime not in RUNTIMES:
        raise InputError(None, f"unknown runtime {runtime!r} (choose one of {', '.join(RUNTIMES)})")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(checkpoint, "checkpoint not found (see the bundle's large_files.yml for where to get it)")

    def built():
        network = build()
        found = load_checkpoint(network, checkpoint, key=state_key)
        return prepare(network.to(device), input_shape, key=found, label=label, runtime=runtime, device=device,
                       threads=threads), found

    ort = _onnxruntime() if runtime != "torch" and str(device) == "cpu" else None
    if ort is not None:
        record = _stored_record(checkpoint)
        key = checkpoint_sha256(checkpoint, record)
        graph = stored_path(checkpoint)
        if record and _matches(record, input_shape, key):
            from .onnx_network import OnnxRuntimeNetwork

            def unreadable(exc):  # a damaged file: export as for a bundle without one
                log.warning("ignoring unreadable ONNX model %s (%s)", graph, exc)
                return built()[0]

            session = _LOADER.submit(ort.InferenceSession, str(graph), _session_options(ort, threads),
                                     providers=["CPUExecutionProvider"])
            return OnnxRuntimeNetwork(session, tuple(input_shape), label, fallback=unreadable), key
        if record:
            log.info("%s is not the ONNX graph of these weights (retrained?); exporting them", graph)
    return built()


# Creates the stored graphs' sessions one after another, beside the caller: ONNX Runtime releases the GIL
# while it builds a session, and a second thread would only compete with the first for the cores.
_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime-session")


def prepare(network, input_shape, *, key: str, label: str, runtime: str = "auto", device="cpu",
            threads: int | None = None):
    """The module to call for ``network`` (weights loaded, eval mode).

    ``input_shape`` is one input without the batch dimension (the batch size may vary);
    ``key`` identifies the weights (a checkpoint sha256: exports are cached under it); ``label`` names the network
    in logs. A trained bundle's stored graphs are :func:`load`'s.
    ``runtime``: "auto" (ONNX Runtime if it can be used, else eager), "onnxruntime" (required)
    or "torch" (eager); ``threads``: ONNX Runtime's intra-op threads (default: its own choice).
    """
    if runtime not in RUNTIMES:
        raise InputError(None, f"unknown runtime {runtime!r} (choose one of {', '.join(RUNTIMES)})")
    network = network.eval()
    if runtime == "torch":
        return network
    ort = _onnxruntime()
    reason = ("onnxruntime is not installed" if ort is None
              else None if str(device) == "cpu" else f"device {device} (ONNX Runtime is used on CPU only)")
    if reason is None:
        from .onnx_network import OnnxRuntimeNetwork

        try:
            session = _session(ort, network, tuple(input_shape), key, threads)
            return OnnxRuntimeNetwork(session, tuple(input_shape), label)
        except Exception as exc:  # an export the exporter cannot handle must not stop scoring
            reason = f"ONNX export failed ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if runtime == "onnxruntime":
        raise InputError(None, f"cannot run {label} with ONNX Runtime: {reason}")
    log.warning("%s: %s; running eager PyTorch instead", label, reason)
    return network


def _session_options(ort, threads: int | None = None):
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Each session has its own thread pool; idle pools that spin (5 folds, 2 contour networks, torch's
    # own threads between sliding windows) took the cores from the running one: 1.4x slower per hand.
    # ONNX Runtime's process-wide pool spins too and was slower still for the ultrasound network.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _session(ort, network, input_shape: tuple, key: str, threads: int | None = None):
    """An ONNX Runtime session for ``network``: the cache's when this key was exported before, else a fresh export
    (cached)."""
    import torch

    options, providers = _session_options(ort, threads), ["CPUExecutionProvider"]
    digest = hashlib.sha256(f"{key}|{type(network).__qualname__}|{input_shape}|{torch.__version__}|{OPSET}"
                            .encode()).hexdigest()[:32]
    path = cache_dir() / "onnx" / f"{digest}.onnx"
    if path.is_file():
        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # a truncated or foreign file: export again
            log.warning("ignoring unreadable cached model %s (%s)", path, exc)
    model = _export(network, input_shape)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(model)
        os.replace(partial, path)
        log.info("exported %s to %s", type(network).__name__, path)
    except OSError as exc:  # a read-only home: run from memory, export again next time
        log.info("could not cache the ONNX model in %s (%s)", path.parent, exc)
    return ort.InferenceSession(model, options, providers=providers)


def _export(network, input_shape: tuple) -> bytes:
    import torch

    example = torch.zeros((1, *input_shape), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notices
        torch.onnx.export(network.cpu(), (example,), buffer, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    return buffer.getvalue()


def add_runtime_option(parser) -> None:
    """The ``--runtime`` option of the scoring commands."""
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="where the networks run: auto (ONNX Runtime if installed, else eager PyTorch, "
                             "with a warning), onnxruntime, or torch (default auto)")
