"""What the commands show: one line per stage, one bar per long stage, the detail on request.

Why one home: both command-line tools, both demos and every training loop must agree on
what the console shows without ``--verbose`` (stages, bars, warnings that need action),
what ``--verbose`` adds (MONAI's per-iteration lines), and where the full detail always
goes (a log file beside what training writes).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

#: ``progress(stage, fraction)``: long-running logic reports where it is (fraction in [0, 1]).
Progress = Callable[[str, float], None]

_CONSOLE = "rheumimaging-console"
_verbose = False


def configure(verbose: bool = False) -> None:
    """Console shows warnings (or, verbose, everything at INFO); the root logger passes INFO on, so
    a training log file gets the detail whatever the console shows. Safe to call again."""
    global _verbose
    _verbose = verbose
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _CONSOLE]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_CONSOLE)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet_optional_decoders()


def verbose() -> bool:
    return _verbose


def quiet_optional_decoders() -> None:
    """MONAI registers an optional GPU DICOM decoder (nvImageCodec) with every image loader and
    warns when it is absent; nothing here uses it, so the warning says nothing a user can act on."""
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin",
                            category=UserWarning)


def route_monai_loggers() -> None:
    """MONAI's ``get_logger`` gives each of its loggers a stdout handler of its own and stops
    propagation; send their records to the root logger instead, whose handlers (the console at
    its level, a training log) decide where they go."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or logger.propagate or not name.startswith(("monai", "ignite")):
            continue
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # exactly MONAI's console handler, not a file
                logger.removeHandler(handler)
        logger.propagate = True


@contextlib.contextmanager
def log_file(path: str | Path) -> Iterator[Path]:
    """Everything logged at INFO and above while inside also goes to ``path`` (with times)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


class ConsoleBars:
    """A :data:`Progress` shown as one tqdm bar per stage on stderr; a new stage closes the last bar.

    ``status(text)`` puts running values (epoch, loss, validation metric) at the bar's end.
    """

    def __init__(self) -> None:
        self._stage: str | None = None
        self._bar = None

    def __call__(self, stage: str, fraction: float) -> None:
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=1000, desc=stage, file=sys.stderr, mininterval=0.5, leave=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {elapsed}<{remaining}{postfix}")
        target = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)

    def status(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None


def console_bars() -> ConsoleBars | None:
    """Bars for the console, or None with ``--verbose`` (MONAI's own lines tell the story then)."""
    return None if _verbose else ConsoleBars()


def stage_printer(started: float) -> Callable[[str], None]:
    """``step(message)`` prints one line per stage with the seconds since ``started``."""
    def step(message: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    return step
