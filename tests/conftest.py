import pytest

from vitlab.config import RunConfig

# A ViT small enough to train a few steps in well under a second on a CPU.
TINY = dict(depth=1, width=16, heads=2, mlp_dim=32, patch_size=7, train_size=200, steps=4, batch_size=32)


@pytest.fixture
def tiny_cfg() -> RunConfig:
    return RunConfig.from_dict(TINY)
