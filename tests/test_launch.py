"""launch.bounded_blocks: the grid of a grid-stride launch over a batch, checked against its contract by brute force."""
from __future__ import annotations

from pointpillars_trt.launch import bounded_blocks


def test_bounded_blocks_contract() -> None:
    for total, minimum in ((4096, 16), (640, 48), (1056, 8)):
        for batch in (1, 2, 7, 32, 1000):
            for need in (0, 1, 5, 100, 10_000, 10**6):
                n = bounded_blocks(need, batch, total, minimum)
                assert n >= 1  # a launch of zero blocks is an error
                assert n <= max(1, need)  # never a block with nothing to do
                share = max(minimum, total // batch)
                assert n == max(1, min(need, share))  # the batch shares `total`, each item gets `minimum` at least
                assert n * batch <= max(total, minimum * batch, batch)  # the whole grid stays bounded
