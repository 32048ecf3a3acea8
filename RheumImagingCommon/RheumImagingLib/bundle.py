"""Running MONAI bundles: one way for Slicer, the command line and the tests.

Bundles follow the model-zoo layout (``configs/``, ``models/``, ``scripts/``). Every
bundle names its helper package ``scripts``, so imports are isolated per bundle:
objects are built while that bundle's root is first on ``sys.path`` and the cached
``scripts`` package of any other bundle is set aside.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from .console import Progress, quiet_optional_decoders, route_monai_loggers
from .errors import InputError


def default_bundle_root() -> Path:
    """The extension's own ``monai_bundle/`` folder (or ``$RHEUM_IMAGING_BUNDLES``).

    Source tree: ``<repo>/monai_bundle`` beside ``RheumImagingCommon/``. Installed extension: Slicer puts
    ``RheumImagingLib/`` in ``lib/Slicer-X.Y/qt-scripted-modules/`` (SlicerMacroBuildScriptedModule.cmake,
    v5.8.1 line 105) and the top-level CMakeLists.txt installs the bundles beside it.
    """
    env = os.environ.get("RHEUM_IMAGING_BUNDLES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    installed, source = here.parents[1] / "monai_bundle", here.parents[2] / "monai_bundle"
    return installed if installed.is_dir() else source


def _scripts_modules() -> list[str]:
    if "scripts" not in sys.modules:  # a submodule is never imported without its package: no need to look (0.5 ms)
        return []
    return [k for k in sys.modules if k == "scripts" or k.startswith("scripts.")]


_IMPORTED: dict[str, dict] = {}  # bundle root -> its ``scripts`` modules, imported once per process


@contextlib.contextmanager
def bundle_imports(root: Path) -> Iterator[None]:
    """Make ``import scripts`` resolve to this bundle's ``scripts`` package.

    A bundle's modules are imported once and set aside between uses, as Python keeps any module: importing
    them again at every use ran their code again (and compiled it, where bytecode is not written)."""
    root = str(root)
    saved = {k: sys.modules.pop(k) for k in _scripts_modules()}
    sys.modules.update(_IMPORTED.get(root, {}))
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)
        _IMPORTED[root] = {k: sys.modules.pop(k) for k in _scripts_modules()}
        sys.modules.update(saved)


@contextlib.contextmanager
def bundle_input_errors() -> Iterator[None]:
    """A self-contained bundle raises its own input error (a ValueError with ``path`` and ``reason``, as
    ``InputError``), which MONAI's config parser wraps in RuntimeErrors: users see it as an InputError."""
    try:
        yield
    except Exception as exc:
        cause = exc
        while cause is not None and not (isinstance(cause, ValueError) and hasattr(cause, "reason")):
            cause = cause.__cause__
        if cause is None or isinstance(cause, InputError) and cause is exc:
            raise
        raise InputError(getattr(cause, "path", None), cause.reason) from None


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _locator_class():
    """MONAI's ``ComponentLocator``, which answers a full module path without first building its table of MONAI's
    2445 classes (50-90 ms per parsed bundle): the table never holds a dotted name, so MONAI's answer is the same.
    The bundles' inference configs name MONAI's classes by full path, so scoring never builds the table."""
    from monai.bundle.config_item import ComponentLocator

    class DottedNameLocator(ComponentLocator):
        def get_component_module_name(self, name):
            return None if "." in name else super().get_component_module_name(name)

    return DottedNameLocator


class Bundle:
    """A parsed bundle configuration (one or more config files, later ones override)."""

    def __init__(self, root: str | Path, configs: str | list[str] = "inference", overrides: dict | None = None):
        from monai.bundle import ConfigParser

        self.root = Path(root).resolve()
        config_dir = self.root / "configs"
        if not (config_dir / "metadata.json").is_file():
            raise InputError(self.root, "not a MONAI bundle folder (configs/metadata.json is missing)")
        names = [configs] if isinstance(configs, str) else list(configs)
        files = []
        for name in names:
            path = config_dir / (name if name.endswith((".json", ".yaml", ".yml")) else f"{name}.json")
            if not path.is_file():
                raise InputError(path, "bundle config not found")
            files.append(str(path))
        self.config_files = files
        quiet_optional_decoders()
        self.metadata = json.loads((config_dir / "metadata.json").read_text())
        self.parser = ConfigParser()
        self.parser.locator = _locator_class()()
        self.parser.read_meta(str(config_dir / "metadata.json"))
        self.parser.read_config(files)
        self.parser["bundle_root"] = str(self.root)
        for key, value in (overrides or {}).items():
            self.parser[key] = value

    @property
    def name(self) -> str:
        return self.metadata.get("name", self.root.name)

    @property
    def version(self) -> str:
        return self.metadata.get("version", "unknown")

    def get(self, key: str, default: Any = None) -> Any:
        """The parsed (instantiated) content at ``key``, built with this bundle's scripts."""
        with bundle_imports(self.root), bundle_input_errors():
            if key not in self.parser:
                return default
            return self.parser.get_parsed_content(key)

    def raw(self, key: str, default: Any = None) -> Any:
        return self.parser.get(key, default)

    def run(self, keys: tuple[str, ...] = ("initialize", "run", "finalize")) -> None:
        """Evaluate the config's workflow entries, as ``python -m monai.bundle run`` does."""
        with bundle_imports(self.root), bundle_input_errors():
            for key in keys:
                if key in self.parser:
                    self.parser.get_parsed_content(key)

    def train(self, stage: str, progress: Progress | None = None, trainer: str = "train#trainer",
              evaluator: str = "validate#evaluator") -> None:
        """Run the train config like :meth:`run`, with MONAI's loggers sent to the root logger (the
        console shows them only when verbose; a training log always gets them) and, given
        ``progress``, ``progress(stage, fraction)`` after every iteration."""
        self.run(("initialize",))
        with bundle_imports(self.root):
            engine = self.parser.get_parsed_content(trainer)  # cached: "run" drives this very trainer
            validator = self.parser.get_parsed_content(evaluator) if evaluator in self.parser else None
        route_monai_loggers()
        if progress is not None:
            EpochProgress(stage, progress, validator).attach(engine)
        self.run(("run", "finalize"))

    def provenance(self, checkpoint: str | Path | None = None) -> dict[str, str]:
        info = {"bundle": self.name, "bundle_version": self.version}
        if checkpoint is not None:
            info["checkpoint"] = str(checkpoint)
            info["checkpoint_sha256"] = sha256_of(checkpoint)
        return info


def load_checkpoint(network, path: str | Path, *, key: str | None = None) -> str:
    """Load weights safely (``weights_only=True``) and return the file's sha256."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found (see the bundle's large_files.yml for where to get it)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or pickled with arbitrary objects
        raise InputError(path, f"not a loadable weights file ({exc.__class__.__name__}: {exc})") from None
    if key and isinstance(state, dict) and key in state:
        state = state[key]
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the bundle's network: {str(exc).splitlines()[0]}") from None
    return sha256_of(path)


class EpochProgress:
    """Reports an ignite trainer's progress as ``progress(stage, fraction)`` after every iteration;
    a ``progress`` with a ``status(text)`` method (a console bar) also gets the epoch, the running
    mean loss of the epoch and the last validation key metric."""

    def __init__(self, stage: str, progress: Progress, validator=None):
        self.stage, self.progress, self.validator = stage, progress, validator
        self._losses: list[float] = []
        self._epoch = self._metric = ""

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self._losses.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        if self.validator is not None:
            self.validator.add_event_handler(Events.COMPLETED, self._validated)

    def _validated(self, validator) -> None:
        name = getattr(validator.state, "key_metric_name", None)
        if name and name in validator.state.metrics:
            self._metric = f", {name} {float(validator.state.metrics[name]):.3f}"
            self._status()

    def _iteration(self, engine) -> None:
        state = engine.state
        per_epoch = state.epoch_length or 1
        fraction = ((state.epoch - 1) + ((state.iteration - 1) % per_epoch + 1) / per_epoch) / state.max_epochs
        self.progress(self.stage, fraction)
        output = state.output[0] if isinstance(state.output, list) and state.output else state.output
        if isinstance(output, dict) and output.get("loss") is not None:  # a decollated batch repeats the loss
            loss = output["loss"]  # the training graph's own tensor where the trainer does not decollate
            self._losses.append(float(loss.detach() if hasattr(loss, "detach") else loss))
        loss = f", loss {sum(self._losses) / len(self._losses):.4f}" if self._losses else ""
        self._epoch = f"epoch {state.epoch}/{state.max_epochs}{loss}"
        self._status()

    def _status(self) -> None:
        status = getattr(self.progress, "status", None)
        if status is not None:
            status(self._epoch + self._metric)
