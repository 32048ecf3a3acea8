"""The MONAI Label app (Resources/MONAILabel) served for real, as Slicer's MONAI Label client talks to it.

MONAI Label 0.8.5 runs in its own environment (``make monailabel-env``, .venv-monailabel: PyPI's torch and
torchvision, pydicom 2.4); this test drives it by subprocess and HTTP on 127.0.0.1. Studies are phantom images
as Slicer saves a 2-D image (a single-slice NRRD); the served bundles are the session's tiny trained test bundles
(trained on other phantom seeds than the studies). Calls: GET /info; POST /infer/<model> with Slicer's
``result_extension .nrrd`` and ``result_dtype uint8``; PUT /datastore/label (tag final); POST /train/<model>.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

MONAILABEL = REPO / ".venv-monailabel" / "bin" / "monailabel"
APP = REPO / "Resources" / "MONAILabel"
NRRD_TYPES = {"unsigned char": np.uint8, "uint8": np.uint8, "float": np.float32, "unsigned short": np.uint16,
              "short": np.int16, "int": np.int32, "double": np.float64}

pytestmark = pytest.mark.skipif(not MONAILABEL.is_file(), reason=(
    "the MONAI Label environment is absent: `make monailabel-env` (part of `make test`) creates .venv-monailabel"))


def write_nrrd(path: Path, rows_cols: np.ndarray, spacing_mm: float) -> Path:
    """A 2-D image as Slicer saves it: a single-slice volume, i along columns, j along rows (LPS)."""
    kind = {np.dtype(np.uint8): "unsigned char", np.dtype(np.uint16): "unsigned short",
            np.dtype(np.float32): "float"}[rows_cols.dtype]
    rows, cols = rows_cols.shape
    header = (f"NRRD0004\ntype: {kind}\ndimension: 3\nspace: left-posterior-superior\nsizes: {cols} {rows} 1\n"
              f"space directions: ({spacing_mm},0,0) (0,{spacing_mm},0) (0,0,{spacing_mm})\n"
              "kinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n")
    path.write_bytes(header.encode() + np.ascontiguousarray(rows_cols).astype(rows_cols.dtype.newbyteorder("<"))
                     .tobytes())
    return path


def read_nrrd(data: bytes) -> tuple[np.ndarray, dict]:
    """(array in file order reversed: (k, j, i) squeezed of single axes, header fields) of a raw/gzip NRRD."""
    head, _, body = data.partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines()[1:] if ": " in line)
    sizes = [int(s) for s in fields["sizes"].split()]
    if fields.get("encoding", "raw") in ("gzip", "gz"):
        body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
    dtype = np.dtype(NRRD_TYPES[fields["type"]]).newbyteorder("<" if fields.get("endian", "little") == "little"
                                                              else ">")
    return np.frombuffer(body, dtype=dtype).reshape(sizes[::-1]), fields


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(int(a.sum() + b.sum()), 1)


class Server:
    """``monailabel start_server`` on a free 127.0.0.1 port, stopped (process group) at the end."""

    def __init__(self, studies: Path, bundles: Path, model: str, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="2", MONAI_LABEL_DATASTORE_AUTO_RELOAD="false",
                   PATH=f"{MONAILABEL.parent}{os.pathsep}{env.get('PATH', '')}")  # as an activated environment
        self.log = log
        cmd = [str(MONAILABEL), "start_server", "--app", str(APP), "--studies", str(studies), "--host", "127.0.0.1",
               "--port", str(self.port), "--conf", "bundles", str(bundles), "--conf", "models", model,
               "--conf", "preload", "false"]
        self.process = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, timeout: float = 180) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError("the server stopped:\n" + self.log.read_text()[-4000:])
            try:
                with urllib.request.urlopen(self.url("/info/"), timeout=5) as r:
                    return json.loads(r.read())
            except OSError:
                time.sleep(1)
        raise AssertionError("the server did not answer /info/ in time:\n" + self.log.read_text()[-4000:])

    def multipart(self, method: str, path: str, fields: dict, files: dict, timeout: float = 300):
        boundary = uuid.uuid4().hex
        body = b""
        for name, value in fields.items():
            body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
        for name, file in files.items():
            body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file.name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n").encode() + file.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url(path), data=body, method=method,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.headers.get("Content-Type", ""), r.read()

    def infer(self, model: str, image: str) -> tuple[dict, np.ndarray, dict]:
        """As Slicer's client: POST /infer/<model>?image=<id>, params with its result extension and dtype;
        the multipart answer's JSON and label file."""
        params = {"result_extension": ".nrrd", "result_dtype": "uint8", "device": "cpu", "client_id": "user-xyz"}
        kind, body = self.multipart("POST", f"/infer/{model}?image={image}", {"params": json.dumps(params)}, {})
        message = email.message_from_bytes(f"Content-Type: {kind}\r\n\r\n".encode() + body)
        parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                 for p in message.get_payload()}
        label, header = read_nrrd(parts["image"])
        return json.loads(parts["params"]), label, header

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


@pytest.fixture(scope="module")
def phantom_studies(tmp_path_factory, us_segmentation_trained):
    """Studies as a Slicer user saves them, with their truth label maps (rows, cols): the ultrasound gland and
    mucosa images of the test bundle's validation split (patients it never trained on; same phantom acquisition as
    its training) and a hand radiograph (seed 303, not in the contour test bundle's training)."""
    from RheumImagingDemo.hand_phantom import render_hand

    studies = tmp_path_factory.mktemp("studies")
    truth = {}
    validation = json.loads((us_segmentation_trained / "datalist.json").read_text())["validation"]
    for image, site in (("us_gland", "parotid_left"), ("us_mucosa", "mucosa")):
        item = next(d for d in validation if d["site"] == site)
        assert site == "mucosa" or item["spacing_mm"] == [0.1, 0.1]
        write_nrrd(studies / f"{image}.nrrd", np.load(us_segmentation_trained / item["image"]).astype(np.float32),
                   item["spacing_mm"][0])
        truth[image] = np.minimum(np.load(us_segmentation_trained / item["label"]), 3)
    pixels, hand = render_hand(303, 1)
    write_nrrd(studies / "hand.nrrd", pixels.astype(np.uint16), 0.2)
    truth["hand"] = hand
    return studies, truth


def serve(tmp_path_factory, studies: Path, model: str, trained: Path):
    """A server over ``studies`` serving ``model`` from a copy of the trained bundle ``trained``."""
    bundles = tmp_path_factory.mktemp("served_bundles")
    shutil.copytree(trained, bundles / model, ignore=shutil.ignore_patterns("__pycache__"))
    running = Server(studies, bundles, model, tmp_path_factory.mktemp("monailabel") / "server.log")
    try:
        info = running.wait()
        yield running, info, bundles
    finally:
        running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, phantom_studies, us_segmentation_trained):
    yield from serve(tmp_path_factory, phantom_studies[0], "sjogren_us_segmentation", us_segmentation_trained)


@pytest.fixture(scope="module")
def contour_server(tmp_path_factory, phantom_studies, contour_bundle_trained):
    yield from serve(tmp_path_factory, phantom_studies[0], "metacarpal_contour", contour_bundle_trained)


def test_info_lists_the_ultrasound_model_with_its_labels(server):
    _, info, _ = server
    models = info["models"]
    assert models["sjogren_us_segmentation"]["labels"] == {"epithelium": 1, "submucosa": 2, "parenchyma": 3}
    assert models["sjogren_us_segmentation"]["dimension"] == 2
    assert "sjogren_us_segmentation" in info["trainers"]


def test_info_serves_metacarpal_contour(contour_server):
    _, info, _ = contour_server
    assert info["models"]["metacarpal_contour"]["labels"] == {"mc2": 1, "mc3": 2, "mc4": 3}
    assert "metacarpal_contour" in info["trainers"]


def test_infer_ultrasound_label_map_on_the_image_grid(server, phantom_studies, us_segmentation_trained):
    """The label map comes back on the image's grid (sizes cols rows 1, the image's spacing, uint8), equal to what
    the extension's own segmenter gives for the same image and bundle, and its parenchyma meets the bar of
    test_us_segmentation_bundle.py against the phantom truth (a transposed or shifted map does not)."""
    from SjogrenUSLib.segmentation import USSegmenter

    running, _, _ = server
    studies, truth = phantom_studies
    result, label, header = running.infer("sjogren_us_segmentation", "us_gland")
    expected = truth["us_gland"]
    assert header["type"] in ("unsigned char", "uint8"), header
    assert header["sizes"].split() == [str(expected.shape[1]), str(expected.shape[0]), "1"], header
    directions = [float(v) for v in header["space directions"].replace("(", " ").replace(")", " ").replace(",", " ")
                  .split()]
    assert np.allclose(np.abs(directions), np.abs(np.diag([0.1] * 3)).ravel(), atol=1e-6), header
    frame = label.reshape(expected.shape)  # file order (k, j, i) = (1, rows, cols)
    assert set(np.unique(frame)) <= {0, 1, 2, 3}
    pixels, _ = read_nrrd((studies / "us_gland.nrrd").read_bytes())
    own = USSegmenter(us_segmentation_trained).predict(pixels.reshape(expected.shape).astype(np.float32))
    assert np.array_equal(frame, own)
    share = (expected == 3).mean()
    assert dice(frame == 3, expected == 3) > max(0.8, 2 * share / (1 + share) + 0.3)
    assert result["label_names"] == {"epithelium": 1, "submucosa": 2, "parenchyma": 3}


def hand_truth_labels(hand: dict, shape: tuple[int, int]) -> np.ndarray:
    """The phantom's MC2, MC3, MC4 outlines filled as the label map the app serves (1, 2, 3; rows, cols)."""
    from skimage.draw import polygon

    labels = np.zeros(shape, np.uint8)
    for value, bone in enumerate(("MC2", "MC3", "MC4"), start=1):
        contour = np.asarray(hand["bones"][bone]["contour"])
        labels[polygon(contour[:, 1], contour[:, 0], shape)] = value
    return labels


def test_infer_metacarpal_contours_label_map_and_control_points(contour_server, phantom_studies):
    running, _, _ = contour_server
    result, label, header = running.infer("metacarpal_contour", "hand")
    frame = label.reshape(label.shape[-2:])
    truth = hand_truth_labels(phantom_studies[1]["hand"], frame.shape)
    for value, bone in enumerate(("MC2", "MC3", "MC4"), start=1):
        assert dice(frame == value, truth == value) > 0.5, bone
        points = np.asarray(result["contours"][bone]["control_points"])
        assert points.shape == (40, 2)  # from the distal tip, as the extension's contourer gives them:
        assert points[0, 1] - points[:, 1].min() < 0.05 * np.ptp(points[:, 1])


def test_upload_hand_label_and_train_the_contour_localiser(contour_server, phantom_studies):
    """A hand label map saved through MONAI Label (MC2, MC3, MC4 = 1, 2, 3) is the truth ContourTrain turns into
    the bundle's outlines: one epoch of the bundle's own train config writes a new models/model.pt."""
    running, _, bundles = contour_server
    studies, truth = phantom_studies
    pixels, _ = read_nrrd((studies / "hand.nrrd").read_bytes())
    labels = hand_truth_labels(truth["hand"], pixels.shape[-2:])
    label = write_nrrd(studies.parent / "hand_label.nrrd", labels, 0.2)
    _, body = running.multipart("PUT", "/datastore/label?image=hand&tag=final",
                                {"params": json.dumps({"label_info": []})}, {"label": label})
    assert json.loads(body)["image"] == "hand"
    weights = bundles / "metacarpal_contour" / "models" / "model.pt"
    before = weights.stat().st_mtime_ns
    request = urllib.request.Request(running.url("/train/metacarpal_contour?run_sync=true"),
                                     data=json.dumps({"max_epochs": 1, "val_split": 0.0, "device": "cpu"}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as r:
        assert r.status == 200
    assert weights.stat().st_mtime_ns > before, running.log.read_text()[-4000:]


def test_upload_labels_and_train_one_round(server, phantom_studies):
    """Labels saved as Slicer saves them (PUT /datastore/label, tag final) are the truth the US bundle's own
    train config trains on: one epoch writes a new models/model.pt into the served bundle."""
    running, _, bundles = server
    studies, truth = phantom_studies
    for image in ("us_gland", "us_mucosa"):
        label = write_nrrd(studies.parent / f"{image}_label.nrrd", truth[image].astype(np.uint8), 0.1)
        kind, body = running.multipart("PUT", f"/datastore/label?image={image}&tag=final",
                                       {"params": json.dumps({"label_info": []})}, {"label": label})
        assert json.loads(body)["image"] == image
    with urllib.request.urlopen(running.url("/datastore/?output=stats"), timeout=30) as r:
        assert json.loads(r.read())["completed"] == 2
    weights = bundles / "sjogren_us_segmentation" / "models" / "model.pt"
    before = weights.stat().st_mtime_ns
    params = {"max_epochs": 1, "val_split": 0.5, "device": "cpu", "multi_gpu": False, "pretrained": True}
    request = urllib.request.Request(running.url("/train/sjogren_us_segmentation?run_sync=true"),
                                     data=json.dumps(params).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as r:
        assert r.status == 200
    assert weights.stat().st_mtime_ns > before, running.log.read_text()[-4000:]
