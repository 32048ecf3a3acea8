"""Measuring helpers for the benchmark: every figure is a ratio of two timings taken in the same run."""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass
class Figure:
    """One benchmark figure with its goal: ``value`` compared with ``goal`` by ``op`` (<= or >=; "info": a figure
    shown without a goal)."""

    module: str
    name: str
    value: float
    op: str
    goal: float
    unit: str = "x"
    detail: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        if self.op == "info":
            return True
        return self.value <= self.goal if self.op == "<=" else self.value >= self.goal

    def as_dict(self) -> dict:
        return {**asdict(self), "holds": self.holds}


def seconds(fn, repeats: int = 1) -> float:
    """The shortest of ``repeats`` wall-clock timings of ``fn()`` (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(timers: dict, rounds: int = 2) -> dict:
    """The shortest seconds of each timer (a callable returning its own seconds), the timers run
    in turns so that a slow spell of a shared machine falls on all of them alike."""
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = min(best[name], timer())
    return best


_CALLS = itertools.count()  # one numbering for every recorder: the order the run called them


class Recorder(torch.nn.Module):
    """Wraps a network and keeps each input it was called with, and when, to time the bare forwards of the same
    work. Two threads may call it at once (the ultrasound loop's two images): each input keeps its own number."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.inputs, self.calls = inner, [], []
        self._recording = threading.Lock()

    def forward(self, x):
        with self._recording:
            self.inputs.append(x.detach().clone())
            self.calls.append(next(_CALLS))
        return self.inner(x)


def bare_forwards(recorders, at_once: int = 1) -> float:
    """Seconds for calling the recorded networks on their recorded inputs, nothing else, in the order the run called
    them: image by image, network by network, so that each network's weights go in and out of the caches as they
    did in the run (replayed network by network instead, a radiograph's networks ran 0.5-1 ms of 88 faster than in
    the run, time that would count as work around them). ``at_once``: calls run at once, as the run ran them."""
    calls = sorted((n, k, x) for k, recorder in enumerate(recorders) for n, x in zip(recorder.calls, recorder.inputs))

    def call(entry):
        _, k, x = entry
        with torch.no_grad():
            return recorders[k].inner(x)

    start = time.perf_counter()
    if at_once > 1:
        with ThreadPoolExecutor(at_once) as workers:
            list(workers.map(call, calls))
    else:
        for entry in calls:
            call(entry)
    return time.perf_counter() - start


#: fp32 peak of one core: one 16-lane AVX-512 FMA (32 FLOP) per cycle at about 3 GHz (about 190 GFLOP/s for 2 cores)
PEAK_GFLOPS_PER_CORE = 96


def peak_gflops() -> float:
    """The CPU's fp32 peak over all its cores (``PEAK_GFLOPS_PER_CORE`` each)."""
    return PEAK_GFLOPS_PER_CORE * (os.cpu_count() or 1)


@contextlib.contextmanager
def time_in_calls(targets):
    """Adds up the seconds spent inside each ``(module, name)`` function while the block runs (a call made from
    inside another timed one counts once, in the outer); yields {name: seconds}, filled as calls return. For one
    thread: a call waiting for the interpreter lock held by another thread would count that wait."""
    spent, inside = {}, [False]
    originals = [(module, name, getattr(module, name)) for module, name in targets]

    def timed(name, function):
        def call(*args, **kwargs):
            if inside[0]:
                return function(*args, **kwargs)
            inside[0], start = True, time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
                inside[0] = False
        return call

    for module, name, function in originals:
        setattr(module, name, timed(f"{getattr(module, '__name__', module)}.{name}", function))
    try:
        yield spent
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


def fastest_fresh_process(run_once, repeats: int = 3) -> tuple[dict, list[dict]]:
    """The result of ``run_once(k)`` (one fresh process's figures, k = 0, 1, ...) with the shortest "first_score_s",
    with every run's in "first_score_s_each", and all the runs: one process is one sample of a shared machine's
    moments, where the steady time it is divided by is the fastest of several rounds."""
    runs = [run_once(k) for k in range(repeats)]
    best = min(runs, key=lambda r: r["first_score_s"])
    return {**best, "first_score_s_each": [r["first_score_s"] for r in runs]}, runs


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def peak_rss(interval: float = 0.01):
    """Samples this process's resident memory while the block runs; yields a dict whose "peak" is set at exit."""
    result = {"peak": _rss_bytes()}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            result["peak"] = max(result["peak"], _rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["peak"] = max(result["peak"], _rss_bytes())


def scaling_series(run, counts, log) -> tuple[dict, dict]:
    """Seconds and peak RSS (MiB) of ``run(n)`` for each n in ``counts``, run up then down again
    (drift on a shared machine cancels). Time: the faster of the two runs of each n. Memory: the
    upward pass only, so that what a larger run left behind cannot hide in a later small one."""
    times, peaks = {}, {}
    for step, n in enumerate([*counts, *reversed(counts)]):
        with peak_rss() as memory:
            start = time.perf_counter()
            run(n)
            elapsed = time.perf_counter() - start
        times[n] = min(times.get(n, float("inf")), elapsed)
        if step < len(counts):
            peaks[n] = memory["peak"] / 2**20
        log(f"{n} images: {elapsed:.1f} s, peak RSS {memory['peak'] / 2**20:.0f} MiB")
    return times, peaks


def memory_and_scaling(module: str, times: dict, peaks: dict, config: dict) -> list[Figure]:
    """The memory and scaling figures of a ``scaling_series``."""
    small, large = min(times), max(times)
    exponent = scaling_exponent(list(times), list(times.values()))
    return [
        Figure(module, f"memory: peak RSS {large} images - peak {small} images", peaks[large] - peaks[small], "<=",
               100, unit="MiB", detail={**config, "peak_rss_mib": peaks}),
        Figure(module, "scaling: fitted exponent of time vs images", exponent, "<=", 1.05, unit="",
               detail={**config, "seconds": times, "ms_per_image": {n: 1000 * t / n for n, t in times.items()}}),
    ]


def scaling_exponent(counts, times) -> float:
    """b in time = a * n**b, fitted by least squares on log-log axes."""
    return float(np.polyfit(np.log(counts), np.log(times), 1)[0])


def machine() -> dict:
    """What the figures were measured on."""
    import monai
    import onnxruntime

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            memory_gib = int(f.readline().split()[1]) / 2**20
    except OSError:
        memory_gib = float("nan")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1),
            "torch_threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else "none", "python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__,
            "onnxruntime": onnxruntime.__version__, "platform": platform.platform()}


def training_figure(module: str, bundle, config: str, log) -> Figure:
    """The training figure of a bundle set to 2 or more epochs (see ``training_throughput``)."""
    result = training_throughput(bundle)
    log(f"training: bundle {result['bundle_samples_per_s']:.1f} samples/s, plain {result['plain_samples_per_s']:.1f} "
        f"(fastest of {result['timed_epochs_each']} epochs each, in turns)")
    return Figure(module, "training: bundle loop samples/s / plain PyTorch loop", result["ratio"], ">=", 0.9,
                  detail={"config": config, **result})


def training_throughput(bundle) -> dict:
    """Samples/s of the bundle's trainer and of a plain PyTorch loop over the same network, loss,
    optimiser and data loader, epoch for epoch in turns: a plain epoch warms caches and allocators,
    then each of the trainer's epochs after its first (its max_epochs, 2 or more) is followed by a
    plain epoch, so that a slow spell of a shared machine falls on both loops alike. Each side keeps
    its fastest epoch (the least disturbed by other load)."""
    from ignite.engine import Events

    from RheumImagingLib.bundle import bundle_imports

    with bundle_imports(bundle.root):
        trainer = bundle.get("train#trainer")
        loader, network, loss, optimizer = (bundle.get(k) for k in ("train#dataloader", "network", "loss", "optimizer"))
        device = next(network.parameters()).device

        def plain_epoch() -> float:
            network.train()
            samples, start = 0, time.perf_counter()
            for batch in loader:
                x, y = batch["image"].to(device), batch["label"].to(device)
                optimizer.zero_grad(set_to_none=True)
                loss(network(x), y).backward()
                optimizer.step()
                samples += len(x)
            return samples / (time.perf_counter() - start)

        epochs, plain = [], []

        def started(engine):
            epochs.append({"start": time.perf_counter(), "samples": 0})

        def count(engine):
            batch = engine.state.batch  # a list of samples once MONAI has decollated it
            epochs[-1]["samples"] += len(batch) if isinstance(batch, list) else len(batch["image"])

        def completed(engine):  # registered after the bundle's handlers: their epoch-end work is timed
            epochs[-1]["end"] = time.perf_counter()
            if len(epochs) > 1:
                plain.append(plain_epoch())

        trainer.add_event_handler(Events.EPOCH_STARTED, started)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, count)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, completed)
        plain_epoch()
        trainer.run()
    ours = [e["samples"] / (e["end"] - e["start"]) for e in epochs[1:]]
    if not ours:
        raise ValueError("set the bundle's max_epochs to 2 or more for a timed epoch")
    return {"bundle_samples_per_s": max(ours), "plain_samples_per_s": max(plain), "ratio": max(ours) / max(plain),
            "samples_per_epoch": epochs[-1]["samples"], "timed_epochs_each": len(ours)}
