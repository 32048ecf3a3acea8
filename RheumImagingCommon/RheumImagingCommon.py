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
        slicer.util.errorDisplay("Installation did not complete: " + ", ".join(still)
                                 + ". Restart Slicer and try again.")
        return False
    return True


def showButtonStates(ui, state, hasInput: bool, readyTip: str, missingTip: str) -> None:
    """The panel's buttons as ``RheumImagingLib.background.PanelState`` decides (Apply disabled while
    anything runs, Cancel enabled only then)."""
    buttons = state.buttons(hasInput)
    ui.applyButton.enabled = buttons["apply"]
    ui.cancelButton.enabled = buttons["cancel"]
    ui.addToCohortButton.enabled = buttons["add_to_cohort"]
    ui.trainButton.enabled = state.running is None
    ui.applyButton.toolTip = state.status_tip(hasInput, readyTip, missingTip)


def cancelWork(training, runner, state) -> None:
    """The panel's Cancel: stops the training if one runs, else the processing job (nothing is written)."""
    if training.running:
        training.cancel()
    else:
        runner.cancel()
        state.cancelled()


class JobRunner:
    """Runs a panel's processing as a ``work_cli`` process (``RheumImagingLib.background.Job``) started with
    ``slicer.util.launchConsoleProcess`` (v5.8.1 Base/Python/slicer/util.py line 3787), as
    SlicerMONAIAuto3DSeg runs its inference (MONAIAuto3DSegLib/process.py line 226, at 9cdf2df), polled on a
    QTimer so Slicer stays responsive. Each stage line the worker prints shows with its progress.
    ``onDone(result, arrays)`` writes into the scene on the main thread; ``onFinished()`` follows every end
    but a cancel.
    """

    def __init__(self, ui, onFinished):
        import qt

        self.ui, self.onFinished = ui, onFinished
        self.job = None
        self.onDone = None
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.connect("timeout()", self.poll)

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, tool, task, arrays, onDone, stage):
        import slicer

        from RheumImagingLib.background import Job
        from RheumImagingLib.widget_support import progress_text

        self.job = Job(tool, task, arrays,
                       launch=lambda argv, env: slicer.util.launchConsoleProcess(argv, updateEnvironment=env))
        self.onDone = onDone
        self.ui.progressBar.value, self.ui.statusLabel.text = progress_text(stage, 0.0)
        self.timer.start()

    def poll(self):
        import slicer

        from RheumImagingLib.widget_support import progress_text

        stage, fraction, outcome = self.job.poll()
        if stage:
            self.ui.progressBar.value, self.ui.statusLabel.text = progress_text(stage[-200:].split("] ", 1)[-1],
                                                                                fraction or 0.0)
        if outcome is None:
            return
        self.timer.stop()
        self.job, onDone = None, self.onDone
        kind, payload = outcome
        try:
            if kind == "done":
                with slicer.util.tryWithErrorDisplay("Could not show the results.", waitCursor=True):
                    onDone(*payload)
                    self.ui.progressBar.value, self.ui.statusLabel.text = progress_text("Done", 1.0)
            else:
                self.ui.statusLabel.text = "Failed; the scene is unchanged."
                slicer.util.errorDisplay("The processing failed.", detailedText=payload)
        finally:
            self.onFinished()

    def cancel(self):
        if self.job is not None:
            self.timer.stop()
            self.job.cancel()
            self.job = None
            self.ui.statusLabel.text = "Cancelled; the scene is unchanged."
            self.ui.progressBar.value = 0


class TrainingPanel:
    """'Train from a cohort...' and 'Cancel' of a module panel: the tool's own ``train`` command runs as a
    separate process (``slicer.util.launchConsoleProcess``, v5.8.1 Base/Python/slicer/util.py line 3787, as
    SlicerMONAIAuto3DSeg runs its inference), polled on a timer so Slicer stays responsive; each line it
    prints is the stage shown, a progress bar's percentage the progress. The trained folder becomes the
    ``bundlePath`` of the panel's parameter node (``parameterNode()``); ``onRunningChanged()`` lets the panel
    disable Apply meanwhile. The panel's Cancel button calls :meth:`cancel` while training runs.
    """

    def __init__(self, ui, tool: str, parameterNode, onRunningChanged):
        import qt

        self.ui, self.tool, self.parameterNode, self.onRunningChanged = ui, tool, parameterNode, onRunningChanged
        self.run = None
        self.outDir = None
        self.timer = qt.QTimer()
        self.timer.setInterval(250)
        self.timer.connect("timeout()", self.poll)
        ui.trainButton.connect("clicked(bool)", self.start)

    @property
    def running(self) -> bool:
        return self.run is not None

    def start(self):
        import qt
        import slicer

        from RheumImagingLib.background import BackgroundRun, new_output_folder, train_command, worker_python

        if self.running or not ensureDependencies():
            return
        cohort = qt.QFileDialog.getOpenFileName(None, "Cohort to train on", "", "Cohort (cohort.csv *.csv)")
        if not cohort:
            return
        parent = qt.QFileDialog.getExistingDirectory(None, "Folder in which to create the trained bundle folder")
        if not parent:
            return
        self.outDir = new_output_folder(parent, f"{self.tool}-bundles")
        argv, env = train_command(worker_python(), self.tool, cohort, self.outDir)
        self.run = BackgroundRun(slicer.util.launchConsoleProcess(argv, updateEnvironment=env))
        self._setRunning(True)
        self.ui.statusLabel.text = f"Training in {self.outDir}"
        self.timer.start()

    def poll(self):
        import slicer

        stage, fraction, code = self.run.poll()
        if stage:
            self.ui.statusLabel.text = stage[-200:]
        if fraction is not None:
            self.ui.progressBar.value = int(100 * fraction)
        if code is None:
            return
        self.timer.stop()
        run, self.run = self.run, None
        self._setRunning(False)
        if code == 0:
            self.ui.progressBar.value = 100
            self.ui.statusLabel.text = f"Trained: {self.outDir}"
            if self.parameterNode():
                self.parameterNode().bundlePath = self.outDir
        elif code > 0:
            slicer.util.errorDisplay(f"Training failed (exit code {code}).",
                                     detailedText="\n".join(run.lines[-80:]))

    def cancel(self):
        if self.running:
            self.run.cancel()
            self.ui.statusLabel.text = f"Training cancelled; {self.outDir} is incomplete and not used."

    def _setRunning(self, running: bool):
        self.ui.trainButton.enabled = not running
        self.onRunningChanged()
