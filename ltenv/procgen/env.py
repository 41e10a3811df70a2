"""``ProcgenEnv``: a procedural family as one Gymnasium environment; ``reset(seed=s)`` plays instance ``s``.

Example:
    >>> import gymnasium as gym, ltenv
    >>> env = gym.make("LiteCoder/proc-json-field-v0")          # doctest: +SKIP
    >>> obs, info = env.reset(seed=7)                            # doctest: +SKIP
    >>> info["task"], info["seed"]                               # doctest: +SKIP
    ('proc-json-field-s00007', 7)
"""

from __future__ import annotations

from typing import Any

from ltenv.env import TerminalEnv
from ltenv.procgen.base import MAX_SEED, Family
from ltenv.procgen.materialize import family as get_family
from ltenv.procgen.materialize import materialize
from ltenv.tasks.loader import load_task

ENTRY_POINT = "ltenv.procgen.env:ProcgenEnv"


class ProcgenEnv(TerminalEnv):
    """:class:`~ltenv.env.TerminalEnv` over the instances of one family.

    ``reset(seed=s)`` materializes (cached) and plays instance ``s``; ``reset()`` draws the instance's seed
    from the environment's RNG (seeded by the last ``reset(seed=...)``, else from the OS). The same seed
    always gives the same instance. ``info`` has ``task`` (``proc-<family>-s<seed>``), ``seed`` and
    ``family`` besides TerminalEnv's keys. Every other keyword goes to :class:`~ltenv.env.TerminalEnv`.
    """

    def __init__(self, family: str | Family, *, max_episode_seconds: float | None = None, **kwargs: Any):
        self.family = get_family(family)
        self._episode_seconds_arg = max_episode_seconds
        self.instance_seed = 0
        super().__init__(self._task(0), max_episode_seconds=max_episode_seconds, **kwargs)

    def _task(self, seed: int):
        return load_task(materialize(self.family, seed))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str | dict[str, str], dict]:
        instance_seed = int(seed) if seed is not None else int(self.np_random.integers(0, MAX_SEED))
        self.task = self._task(instance_seed)  # a bad seed raises here, before the sandbox starts
        self.instance_seed = instance_seed
        self.max_episode_seconds = self._episode_seconds_arg or self.task.config.agent.timeout_sec
        obs, info = super().reset(seed=seed, options=options)
        info["seed"] = instance_seed
        info["family"] = self.family.name
        return obs, info
