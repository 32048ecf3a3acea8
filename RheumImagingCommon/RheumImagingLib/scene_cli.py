"""``load`` subcommand of both command lines: images into an MRML scene folder."""

from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from .imageio import load_volume
    from .scene import new_scene, place_under_patient, save_scene

    scene = new_scene()
    for path in args.images:
        node = load_volume(scene, path, frame=args.frame)
        place_under_patient(scene, node, node.GetAttribute("RheumImaging.PatientID") or Path(path).stem)
        print(f"{path}: {node.GetAttribute('RheumImaging.Calibration')}")
    mrml = save_scene(scene, args.out, overwrite=args.overwrite)
    print(f"wrote {mrml} and {len(args.images)} volume(s)")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("load", help="load images (DICOM, PNG, TIFF) into an MRML scene folder",
                                   description="Load images with their calibration into a new MRML scene and save it.")
    parser.add_argument("images", nargs="+", help="image files (a folder must hold one image)")
    parser.add_argument("--out", required=True, help="scene folder to write (scene.mrml + one file per volume)")
    parser.add_argument("--frame", type=int, default=None, help="frame of multi-frame files (default: the first)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    parser.set_defaults(func=run)
