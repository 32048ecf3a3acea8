"""Phantoms and demos: synthetic hand radiographs and salivary/buccal ultrasound with exact ground
truth, the threshold calibration fitted on them, and the ``make demo`` jobs. Installed with the
command-line tools (pip), not with the Slicer extension: patients' images never need them, and the
modules' phantom self-tests get them from the source tree (ctest puts it on PYTHONPATH)."""
