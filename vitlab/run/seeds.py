"""Independent random streams of one run, all derived from its seed.

numpy's SeedSequence mixes (seed, stream, index) into unrelated states, so the shuffle of
epoch e, the crops of step e, the initialisation and the few-shot draws never share a seed
(a hand-made seed * k + e scheme collides as soon as an epoch number equals a step number).
"""
from __future__ import annotations

import numpy as np

STREAMS = ("init", "shuffle", "crops", "fewshot")


def derive(seed: int, stream: str, *index: int) -> int:
    """A 63-bit seed for one stream of a run (and one epoch, step or draw of it)."""
    if stream not in STREAMS:
        raise ValueError(f"stream: {stream!r} is not one of {', '.join(STREAMS)}")
    state = np.random.SeedSequence([seed, STREAMS.index(stream), *index]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1
