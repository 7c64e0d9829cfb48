"""Executing notebooks with papermill, quietly, as sweeps and reports both do."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

import papermill as pm
from jupyter_client.manager import KernelManager

# ipykernel warns at every start that its loopback TCP is unencrypted.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
# Imported once when a reused kernel starts, not once per run.
PRELOAD = "import vitlab.study.runner, vitlab.report.figures"
# A kernel binds ports its manager found free a moment earlier; with several sweeps starting
# kernels at once another process can take one first, and the kernel dies before it answers
# (seen once in CI as "Kernel died before replying to kernel_info"). Such a start is retried.
KERNEL_STARTS = 3
STARTUP_TIMEOUT_S = 300  # kernels importing torch side by side on a busy 2-core machine


def execute_in_new_kernel(notebook: Path, output: Path, parameters: dict, progress: bool = False) -> None:
    """Run notebook in a fresh kernel with parameters injected, working in the notebook's folder.
    The kernel is stopped at once when the notebook is done, as a sweep's kernels are: asked to
    exit, one with torch, timm and matplotlib loaded took about 3 s of a 14-s report."""
    pm.execute_notebook(str(notebook), str(output), parameters=parameters, progress_bar=progress,
                        cwd=str(Path(notebook).parent), extra_arguments=KERNEL_ARGUMENTS, shutdown_kernel="immediate")


def die_with(parent: int):
    """What the kernel process runs before it starts: SIGKILL it when the thread that started
    it (a sweep's, process parent) dies. ipykernel notices a dead parent only within a second,
    time enough for a killed sweep's run to write its record while another sweep has taken that
    run over. A parent that died before the request (between fork and this call) is never
    signalled, so the kernel then ends itself."""
    def follow() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
    return follow


class _TrackingKernelManager(KernelManager):
    """Remembers the clients papermill opens on it, so they can be closed after each run."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.clients = []

    def client(self, **kwargs):
        kc = super().client(**kwargs)
        self.clients.append(kc)
        return kc


class Kernel:
    """One Jupyter kernel reused by successive papermill executions of a notebook.

    A fresh kernel per run spends about 5 s of CPU starting IPython and importing torch,
    timm and vitlab; a reused one pays that once. Its namespace is cleared before each
    run (imported modules stay loaded), and a kernel that died is replaced. With
    fresh=True every run gets a new kernel.
    """

    def __init__(self, cwd: Path, env: dict[str, str] | None = None, fresh: bool = False):
        self.cwd, self.env, self.fresh = Path(cwd), env, fresh
        self.km: _TrackingKernelManager | None = None

    def execute(self, notebook: Path, output: Path, parameters: dict) -> None:
        self._ready()
        try:
            pm.execute_notebook(str(notebook), str(output), parameters=parameters, progress_bar=False,
                                cwd=str(self.cwd), km=self.km)
        finally:
            for kc in self.km.clients:
                kc.stop_channels()
            self.km.clients.clear()

    def _ready(self) -> None:
        if self.km is not None and not self.fresh and self.km.is_alive():
            kc = self.km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
                kc.execute_interactive("%reset -f", silent=True, timeout=60)
            finally:
                kc.stop_channels()
                self.km.clients.clear()
            return
        for start in range(KERNEL_STARTS):
            self.close()
            self.km = _TrackingKernelManager(kernel_name="python3")
            self.km.start_kernel(extra_arguments=[*KERNEL_ARGUMENTS, f"--IPKernelApp.exec_lines=['{PRELOAD}']"],
                                 cwd=str(self.cwd), env={**os.environ, **(self.env or {})},
                                 preexec_fn=die_with(os.getpid()))
            kc = self.km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
                return
            except RuntimeError:  # it died before answering: nothing ran in it, so start another
                if start == KERNEL_STARTS - 1:
                    raise
            finally:
                kc.stop_channels()
                self.km.clients.clear()

    def close(self) -> None:
        if self.km is not None and self.km.has_kernel:
            self.km.shutdown_kernel(now=True)
        self.km = None

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
