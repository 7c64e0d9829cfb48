"""The reused kernel of a sweep: it starts again when its first start dies, and dies with its sweep."""
import socket
import subprocess
import sys

import nbformat
import psutil

from vitlab.study import kernels


def test_a_kernel_that_dies_at_start_is_started_again(tmp_path, monkeypatch):
    """As when another process takes one of the ports its manager found free: the first kernel
    is given a port already bound, dies before answering, and the run still goes through."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    started = []
    init = kernels._TrackingKernelManager.__init__

    def first_on_a_busy_port(self, **kwargs):
        init(self, **kwargs)
        if not started:
            self.cache_ports, self.shell_port = False, busy.getsockname()[1]
        started.append(self)

    monkeypatch.setattr(kernels._TrackingKernelManager, "__init__", first_on_a_busy_port)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)")],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    try:
        with kernels.Kernel(tmp_path) as kernel:
            kernel.execute(path, tmp_path / "out.ipynb", {})
    finally:
        busy.close()
    assert len(started) == 2
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "42\n"


ORPHAN = """
import os, subprocess, sys, threading, time
from vitlab.study import kernels
follow = kernels.die_with(os.getpid())

def late():  # in the child: the sweep dies before the child asks to die with it
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(1)
    follow()

threading.Timer(0.3, os._exit, (0,)).start()
subprocess.Popen(["sleep", "60"], preexec_fn=late)
"""


def test_a_kernel_whose_sweep_died_while_it_started_dies_too(tmp_path):
    """The kernel asks to die with its sweep between fork and exec; a sweep killed before that
    moment must not leave a kernel running without it."""
    pid_file = tmp_path / "child.pid"
    subprocess.run([sys.executable, "-c", ORPHAN, str(pid_file)], check=True, timeout=60)
    child = psutil.Process(int(pid_file.read_text()))
    try:
        child.wait(timeout=10)
    except psutil.TimeoutExpired:
        child.kill()
        raise AssertionError("the child outlived the process that started it") from None
