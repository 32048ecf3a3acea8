"""Each bundle in monai_bundle/ passes the checks of Project-MONAI/model-zoo's CI that run offline.

Reproduced from the zoo (repository Project-MONAI/model-zoo, branch dev): ``ci/verify_bundle.py`` (necessary and
preferred files, version/changelog, ``verify_metadata``, ``verify_net_in_out``, ``ckpt_export``), ``ci/utils.py``
(``download_large_files``: what a ``large_files.yml`` may hold), CONTRIBUTING.md (config key names, 25 MB per file,
TorchScript exclusions documented in docs/README.md) and its code-format job (``runtests.sh --codeformat``: isort,
black ``--skip-magic-trailing-comma``, flake8 with the plugins of ``requirements-dev.txt``; settings from its
``setup.cfg``/``pyproject.toml``). Like the zoo's CI, every MONAI call runs in its own process with the bundle folder
first on ``sys.path`` (each bundle has a package named ``scripts``). The zoo's "new version for a changed bundle" rule
compares with its ``model_info.json`` of published versions; these bundles are not published yet, so only the
version-in-changelog half applies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BUNDLE_ROOT = REPO / "monai_bundle"
BUNDLES = sorted(p.parent.parent.name for p in BUNDLE_ROOT.glob("*/configs/metadata.json"))
SCHEMA = Path(os.environ.get("MONAI_META_SCHEMA", REPO / "Testing" / "Data" / "monai" / "meta_schema_20240725.json"))

# The zoo's setup.cfg [flake8] and [isort] and pyproject.toml [tool.black], as its runtests.sh applies them.
FLAKE8_CFG = """[flake8]
select = B,C,E,F,N,P,T4,W,B9
max_line_length = 120
ignore = E203,E501,E741,W503,W504,C408,N812,B023,B905,B028,B907,C419
per_file_ignores = __init__.py: F401, __main__.py: F401
"""
ISORT_ARGS = ["--profile", "black", "--line-length", "120", "-p", "models"]
BLACK_ARGS = ["--line-length", "120", "--skip-magic-trailing-comma"]
MAX_FILE_BYTES = 25 * 1024 * 1024  # "MONAI Model Zoo limits each single file to be no larger than 25MB"
ZOO_HASH_TYPES = ("md5", "sha1", "sha256", "sha512")  # ci/utils.py SUPPORTED_HASH_TYPES
# What a network that does not export to TorchScript must be called in its bundle's docs/README.md, beside the word
# "TorchScript" (CONTRIBUTING.md: "If your bundle does not support TorchScript, please mention it in docs/README.md").
NETWORK_NAMES = {"curvegcn_def": "Curve-GCN"}

def cases(check: str):
    """The bundles as parameters (``check`` names the zoo check, for the test ids' readers)."""
    return [pytest.param(name, id=name) for name in BUNDLES]


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _config_file(configs: Path, stem: str) -> Path | None:
    """ci/verify_bundle.py _find_bundle_file: configs/<stem>.json, .yaml or .yml."""
    found = [configs / f"{stem}.{ext}" for ext in ("json", "yaml", "yml") if (configs / f"{stem}.{ext}").is_file()]
    return found[-1] if found else None


def _large_files(bundle: Path) -> list[dict]:
    """The entries of large_files.yml/.yaml/.json as the zoo reads them (MONAI's ConfigParser)."""
    from monai.bundle import ConfigParser

    config = _config_file(bundle, "large_files")
    if config is None:
        return []
    parser = ConfigParser()
    parser.read_config(str(config))
    return parser.get()["large_files"]


@pytest.mark.parametrize("name", cases("directory"))
def test_necessary_and_preferred_files(name):
    """verify_bundle_directory: LICENSE, configs/metadata.json, an inference config; docs/README.md (the zoo's
    readme template); no file over 25 MB."""
    bundle = BUNDLE_ROOT / name
    for rel in ("LICENSE", "configs/metadata.json", "docs/README.md"):
        assert (bundle / rel).is_file(), f"{name}: necessary file {rel} is missing"
    assert _config_file(bundle / "configs", "inference") is not None, f"{name}: no configs/inference.json"
    big = [str(p) for p in bundle.rglob("*") if p.is_file() and p.stat().st_size > MAX_FILE_BYTES]
    assert not big, f"{name}: files over 25 MB belong in large_files.yml: {big}"


@pytest.mark.parametrize("name", cases("model_pt"))
def test_weights_named_models_model_pt(name):
    """The preferred weights file is models/model.pt (what verify_bundle, ckpt_export and MONAI Label's
    BundleInferTask load): shipped, or listed in large_files.yml for the zoo to download before verifying."""
    bundle = BUNDLE_ROOT / name
    listed = {entry["path"] for entry in _large_files(bundle)}
    assert (bundle / "models" / "model.pt").is_file() or "models/model.pt" in listed, (
        f"{name}: neither models/model.pt nor a large_files.yml entry for it ({sorted(listed)})")


@pytest.mark.parametrize("name", cases("large_files"))
def test_large_files_config_is_what_download_large_files_accepts(name):
    """ci/utils.py download_large_files passes each entry to monai.apps.utils.download_url: only path, url,
    hash_val, hash_type; a supported hash type; an empty or full-length digest (never a placeholder)."""
    bundle = BUNDLE_ROOT / name
    entries = _large_files(bundle)
    for entry in entries:
        assert set(entry) <= {"path", "url", "hash_val", "hash_type"}, (name, entry)
        assert entry["path"].startswith("models/") and entry["url"].startswith("https://"), (name, entry)
        hash_type = entry.get("hash_type", "")
        assert hash_type in ("", *ZOO_HASH_TYPES), f"{name}: hash_type {hash_type!r} is not one download_url knows"
        digest = entry.get("hash_val", "")
        assert digest == "" or re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128}", digest), (
            f"{name}: hash_val {digest!r} is neither empty nor a digest")
    text = _config_file(bundle, "large_files").read_text()
    assert "download_large_files" in text or not re.search(r"monai\.bundle download\b", text), (
        f"{name}: large_files.yml names `monai.bundle download`; the command for this file is download_large_files")


@pytest.mark.parametrize("name", cases("version"))
def test_version_and_changelog(name):
    """verify_version_changes: metadata has version and changelog, and the version is in the changelog
    (here also: it is the newest entry, in MAJOR.MINOR.PATCH)."""
    meta = _json(BUNDLE_ROOT / name / "configs" / "metadata.json")
    assert "version" in meta and "changelog" in meta, name
    assert meta["version"] in meta["changelog"], f"{name}: version {meta['version']} is missing in changelog"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]), meta["version"]
    newest = max(meta["changelog"], key=lambda v: tuple(int(p) for p in v.split(".")))
    assert meta["version"] == newest, f"{name}: version {meta['version']} is not the newest changelog entry"


@pytest.mark.parametrize("name", cases("metadata_schema"))
def test_verify_metadata(name, tmp_path):
    """verify_metadata_format: MONAI's ``verify_metadata`` against the schema the metadata names (the zoo's
    ci/prepare_schema.py puts it at eval/schema.json; here the copy in Testing/Data/monai)."""
    from monai.bundle import verify_metadata

    assert SCHEMA.is_file(), f"the metadata schema is missing: {SCHEMA}"
    meta_file = BUNDLE_ROOT / name / "configs" / "metadata.json"
    assert _json(meta_file)["schema"].endswith("/" + SCHEMA.name), f"{name}: metadata names another schema"
    schema = tmp_path / "eval" / "schema.json"
    schema.parent.mkdir()
    shutil.copyfile(SCHEMA, schema)
    verify_metadata(meta_file=str(meta_file), filepath=str(schema))  # raises ValidationError naming the field


def _keys(config: dict, prefix: str = "") -> set[str]:
    """Every id of a config (``a#b#c``), as the zoo's key rules name them."""
    out = set()
    for key, value in config.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, prefix + key + "#")
    return out


@pytest.mark.parametrize("name", cases("inference_keys"))
def test_inference_config_keys(name):
    """CONTRIBUTING.md, "Preferred Files and Keys": bundle_root, device, network_def, inferer, and output_dir
    where the config writes files; a run (what `monai.bundle run` executes)."""
    config = _json(_config_file(BUNDLE_ROOT / name / "configs", "inference"))
    missing = [k for k in ("bundle_root", "device", "network_def", "inferer", "output_dir", "run") if k not in config]
    assert not missing, f"{name}: inference config lacks {missing}"


@pytest.mark.parametrize("name", cases("train_keys"))
def test_train_config_keys(name):
    """CONTRIBUTING.md: bundle_root, device, dataset_dir (and output_dir); train#trainer, #max_epochs, #dataset,
    #dataset#data, #handlers; with validate: its evaluator, handlers, dataset, data; a ValidationHandler interval
    is @val_interval."""
    train = _config_file(BUNDLE_ROOT / name / "configs", "train")
    assert train is not None, f"{name}: no configs/train.json"
    config = _json(train)
    keys = _keys(config)
    required = ["bundle_root", "device", "dataset_dir", "output_dir", "train#trainer", "train#trainer#max_epochs",
                "train#dataset", "train#dataset#data", "train#handlers"]
    if "validate" in config:
        required += ["validate#evaluator", "validate#handlers", "validate#dataset", "validate#dataset#data"]
    missing = [k for k in required if k not in keys]
    assert not missing, f"{name}: train config lacks {missing}"
    text = json.dumps(config)
    for handler in re.finditer(r'"_target_": "ValidationHandler"[^}]*', text):
        assert '"interval": "@val_interval"' in handler.group(0), f"{name}: {handler.group(0)}"
        assert "val_interval" in config, f"{name}: ValidationHandler without a val_interval key"


@pytest.fixture(scope="module")
def network_checks(tmp_path_factory):
    """bundle -> the network checks of ci/verify_bundle.py, run once per bundle in its own process
    (Testing/Python/model_zoo_verify.py)."""
    done: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in done:
            work = tmp_path_factory.mktemp(f"zoo_{name}")
            bundle = work / name
            shutil.copytree(BUNDLE_ROOT / name, bundle, ignore=shutil.ignore_patterns("models", "__pycache__"))
            out = work / "checks.json"
            env = {**os.environ, "PYTHONPATH": str(bundle), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
            result = subprocess.run([sys.executable, str(Path(__file__).with_name("model_zoo_verify.py")), str(bundle),
                                     str(out)], cwd=bundle, env=env, capture_output=True, text=True, timeout=300)
            assert result.returncode == 0 and out.is_file(), result.stderr[-3000:]
            done[name] = {**_json(out), "readme": (bundle / "docs" / "README.md").read_text()}
        return done[name]

    return run


@pytest.mark.parametrize("name", cases("net_in_out"))
def test_verify_net_in_out(name, network_checks):
    """verify_data_shape: ``verify_net_in_out`` of network_def at the default n (1) on the metadata's input and
    output formats."""
    error = network_checks(name)["net_in_out"]
    assert error is None, f"{name}: verify_net_in_out fails:\n{error}"


@pytest.mark.parametrize("name", cases("torchscript"))
def test_ckpt_export_torchscript(name, network_checks):
    """verify_torchscript: ``ckpt_export`` of the zoo's fake weights into TorchScript, which then loads; for
    network_def and every other ``*_def`` network of the inference config. One that does not export (never
    network_def) passes only where docs/README.md says so, naming it beside the word TorchScript."""
    checks = network_checks(name)
    for net_id, error in checks["torchscript"].items():
        if error is None:
            continue
        network = NETWORK_NAMES.get(net_id, net_id)
        documented = [p for p in checks["readme"].split("\n\n") if "TorchScript" in p and network in p]
        assert net_id != "network_def" and documented, (
            f"{name}: {net_id} does not export to TorchScript and docs/README.md does not say so:\n{error}")


def _python_files(name: str) -> list[str]:
    return sorted(str(p) for p in (BUNDLE_ROOT / name).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("name", cases("code_format"))
def test_code_format_isort_black_flake8(name, tmp_path):
    """runtests.sh --codeformat with the zoo's settings: isort --check, black --check, flake8 (pep8-naming,
    bugbear, comprehensions, executable). Run from outside the bundle, as from the zoo's root."""
    files = _python_files(name)
    if not files:
        pytest.skip(f"{name} has no Python files")
    cfg = tmp_path / "setup.cfg"
    cfg.write_text(FLAKE8_CFG)
    empty = tmp_path / "pyproject.toml"
    empty.write_text("")
    failures = []
    for tool, args in (("isort", ["--check-only", "--diff", "--settings-path", str(tmp_path), *ISORT_ARGS]),
                       ("black", ["--check", "--diff", "--config", str(empty), *BLACK_ARGS]),
                       ("flake8", ["--config", str(cfg)])):
        result = subprocess.run([sys.executable, "-m", tool, *args, *files], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            failures.append(f"--- {tool}\n{result.stdout[-2500:]}{result.stderr[-1500:]}")
    assert not failures, f"{name}:\n" + "\n".join(failures)
