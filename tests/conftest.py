import os

import pytest

# Under pytest-xdist (pyproject's addopts: two workers, each taking whole files) every process a
# test starts trains on one thread: beside the other worker, a run would take the cores it leaves
# (vitlab.run.cpu), and results differ in their last bits with the thread count. Set before any
# test module imports torch.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from vitlab.run.config import RunConfig
from vitlab.study import results

# A ViT small enough to train a few steps in well under a second on a CPU.
TINY = dict(depth=1, width=16, heads=2, mlp_dim=32, patch_size=7, train_size=200, steps=4, batch_size=32)


@pytest.fixture
def tiny_cfg() -> RunConfig:
    return RunConfig.from_dict(TINY)


DAMAGE = ("truncated", "empty", "foreign", "list", "another run's")


def _damage(results_dir, run_ids: list[str]) -> dict[str, str]:
    """Damage the records of run_ids[1:] (written already), each in one way a file in runs/ goes
    bad; run_ids[0]'s record is left whole. The damaged run ids and what each was made into."""
    whole = results.record_path(results_dir, run_ids[0]).read_text()
    kinds = {}
    for run_id, kind in zip(run_ids[1:], DAMAGE):
        path = results.record_path(results_dir, run_id)
        text = path.read_text()
        path.write_text({"truncated": text[:len(text) // 2], "empty": "", "foreign": '{"hello": 1}',
                         "list": f"[{text}]", "another run's": whole}[kind])
        kinds[run_id] = kind
    return kinds


@pytest.fixture
def damage():
    return _damage
