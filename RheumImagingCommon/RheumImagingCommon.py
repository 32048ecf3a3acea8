"""Hidden Slicer module that ships the code both RheumImaging modules share
(``RheumImagingLib``: image I/O, MRML scenes, statistics, bundle running)."""

from slicer.ScriptedLoadableModule import ScriptedLoadableModule


class RheumImagingCommon(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "RheumImaging Common"
        self.parent.categories = ["Rheumatology"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerRheumImaging contributors"]
        self.parent.helpText = "Shared code of the RheumTexture and SjogrenUS modules."
        self.parent.acknowledgementText = ""
        self.parent.hidden = True


def ensureDependencies() -> bool:
    """True when the Python packages the modules need are installed, after offering to install them.

    Called on first use (Load/Apply), never at import. The decisions (what is missing, which installer)
    are in ``RheumImagingLib.dependencies``; torch goes through the PyTorch extension's
    ``PyTorchUtilsLogic.installTorch`` (a declared extension dependency), the rest through
    ``slicer.util.pip_install`` (v5.8.1 Base/Python/slicer/util.py line 3899; a list keeps each specifier whole).
    """
    import slicer

    from RheumImagingLib import dependencies

    missing = dependencies.missing_requirements()
    if not missing:
        return True
    if not slicer.util.confirmOkCancelDisplay(dependencies.confirmation_text(missing),
                                              windowTitle="RheumImaging: Python packages"):
        slicer.util.warningDisplay(dependencies.declined_message(missing), windowTitle="RheumImaging")
        return False
    torch_range, pip_requirements = dependencies.install_plan(missing)
    with slicer.util.WaitCursor():
        if torch_range is not None:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay("torch is installed through the PyTorch extension: install 'PyTorch' "
                                         "from the Extensions Manager, restart Slicer and try again.")
                return False
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                             torchVersionRequirement=torch_range) is None:
                slicer.util.warningDisplay(dependencies.declined_message(missing), windowTitle="RheumImaging")
                return False
        if pip_requirements:
            slicer.util.pip_install(pip_requirements)
    still = dependencies.missing_requirements()
    if still:
        slicer.util.errorDisplay("Installation did not complete: " + ", ".join(still) + ". Restart Slicer and try again.")
        return False
    return True
