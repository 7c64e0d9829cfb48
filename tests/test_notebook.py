"""The reused kernel of a sweep: it starts again when its first start dies."""
import socket

import nbformat

from vitlab import notebook


def test_a_kernel_that_dies_at_start_is_started_again(tmp_path, monkeypatch):
    """As when another process takes one of the ports its manager found free: the first kernel
    is given a port already bound, dies before answering, and the run still goes through."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    started = []
    init = notebook._TrackingKernelManager.__init__

    def first_on_a_busy_port(self, **kwargs):
        init(self, **kwargs)
        if not started:
            self.cache_ports, self.shell_port = False, busy.getsockname()[1]
        started.append(self)

    monkeypatch.setattr(notebook._TrackingKernelManager, "__init__", first_on_a_busy_port)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)")],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    try:
        with notebook.Kernel(tmp_path) as kernel:
            kernel.execute(path, tmp_path / "out.ipynb", {})
    finally:
        busy.close()
    assert len(started) == 2
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "42\n"
