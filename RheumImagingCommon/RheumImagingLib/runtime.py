"""Where the bundles' networks run: ONNX Runtime on CPU when it is installed, else eager PyTorch.

Why: on CPU, ONNX Runtime ran the networks 1.5-2x faster than eager PyTorch and faster than a
frozen TorchScript module, with the same outputs to 1e-6 (``make bench``, docs/benchmarks.md).
Each network is exported once per weights file (the key is the checkpoint's sha256) into a
cache folder and reused by later runs. Without onnxruntime, when an export fails, or on a GPU
device, the eager network runs and a log line says so; results are the same either way.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from pathlib import Path

from .errors import InputError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "torch")
OPSET = 17


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

    if isinstance(network, OnnxRuntimeNetwork):
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def prepare(network, input_shape, *, key: str, label: str, runtime: str = "auto", device="cpu"):
    """The module to call for ``network`` (weights loaded, eval mode).

    ``input_shape`` is one input without the batch dimension (the batch size may vary);
    ``key`` identifies the weights (a checkpoint sha256); ``label`` names the network in logs.
    ``runtime``: "auto" (ONNX Runtime if it can be used, else eager), "onnxruntime" (required)
    or "torch" (eager).
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
            return OnnxRuntimeNetwork(_session(ort, network, tuple(input_shape), key), tuple(input_shape), label)
        except Exception as exc:  # an export the exporter cannot handle must not stop scoring
            reason = f"ONNX export failed ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if runtime == "onnxruntime":
        raise InputError(None, f"cannot run {label} with ONNX Runtime: {reason}")
    log.warning("%s: %s; running eager PyTorch instead", label, reason)
    return network


def _session(ort, network, input_shape: tuple, key: str):
    """An ONNX Runtime session for ``network``, from the cache when this key was exported before."""
    import torch

    digest = hashlib.sha256(f"{key}|{type(network).__qualname__}|{input_shape}|{torch.__version__}|{OPSET}"
                            .encode()).hexdigest()[:32]
    path = cache_dir() / "onnx" / f"{digest}.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Each session has its own thread pool; idle pools that spin (5 folds, 2 contour networks, torch's
    # own threads between sliding windows) took the cores from the running one: 1.4x slower per hand.
    # ONNX Runtime's process-wide pool spins too and was slower still for the ultrasound network.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
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
