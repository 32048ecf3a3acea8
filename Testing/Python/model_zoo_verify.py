"""The network checks of model-zoo's ci/verify_bundle.py for one bundle, in one process as the zoo runs them.

Usage: ``python model_zoo_verify.py BUNDLE_DIR OUT.json`` with BUNDLE_DIR as the working directory's first path
entry (the bundle's own ``scripts``). Writes ``{"net_in_out": error-or-null, "torchscript": {net_id: error-or-null}}``:
``verify_net_in_out`` on ``network_def`` at the default n, then for every ``*_def`` network of the inference config
the zoo's fake weights (its ``_produce_fake_weights``: the network's initial state dict), ``ckpt_export`` into
TorchScript and ``torch.jit.load`` of the result.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def _error() -> str:
    return traceback.format_exc()[-3000:]


def main(bundle: Path, out: Path) -> None:
    import torch
    from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

    meta, config = str(bundle / "configs" / "metadata.json"), str(bundle / "configs" / "inference.json")
    results: dict = {"net_in_out": None, "torchscript": {}}
    try:
        verify_net_in_out(net_id="network_def", meta_file=meta, config_file=config, bundle_root=str(bundle),
                          device="cpu")
    except Exception:  # noqa: BLE001 - the report carries the zoo check's failure
        results["net_in_out"] = _error()
    ids = ["network_def"] + sorted(k for k in json.loads(Path(config).read_text()) if k.endswith("_def")
                                   and k != "network_def")
    work = out.parent
    for net_id in ids:
        try:
            parser = ConfigParser()
            parser.read_config(config)
            parser.read_meta(meta)
            parser["bundle_root"] = str(bundle)
            weights, exported = work / f"fake_{net_id}.pt", work / f"verify_{net_id}.ts"
            torch.save(parser.get_parsed_content(net_id).state_dict(), weights)
            ckpt_export(net_id=net_id, filepath=str(exported), ckpt_file=str(weights), meta_file=meta,
                        config_file=config, bundle_root=str(bundle))
            torch.jit.load(str(exported))
            results["torchscript"][net_id] = None
        except Exception:  # noqa: BLE001
            results["torchscript"][net_id] = _error()
    out.write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
