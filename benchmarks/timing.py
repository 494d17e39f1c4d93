"""Step timing shared by the benchmarks: per-step wall times, setups interleaved round by round."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Records the wall time of every optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


class StepIntervalTimer(TrainerCallback):
    """Records the wall time between consecutive step ends: everything a step costs, including work a trainer does
    before `on_step_begin` (fetching the batch, and generating completions where that happens in
    `get_batch_samples`). The first interval starts at `on_train_begin`."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        self.times.append(now - self._t)
        self._t = now


def interleaved_median_steps(runs: dict[str, Callable[[], list[float]]], rounds: int) -> dict[str, float]:
    """Median step time per setup; each round runs every setup once, in turn, so machine drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].extend(run())
    return {name: statistics.median(v) for name, v in times.items()}
