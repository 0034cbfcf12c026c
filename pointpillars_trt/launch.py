"""Launch sizes shared by the kernels' launchers (stages, plugins, backends): a bounded grid split between a batch's
items. Plain arithmetic, no CUDA import, so the layer below all of them can hold it."""
from __future__ import annotations


def bounded_blocks(need: int, batch: int, total: int, minimum: int) -> int:
    """Blocks per batch item of a grid-stride launch: what `need` work items need, but at most about `total` blocks
    for the whole batch (at least `minimum` an item). A launch over a buffer's capacity (40,000 pillars for
    3,000-8,600 real ones) would mostly start empty blocks."""
    return max(1, min(int(need), max(int(minimum), int(total) // max(1, int(batch)))))
