"""Agents: scaffolds (chat format and reply parsing), policies (what writes the replies) and the episode
loop that turns a task and a policy into a :class:`~ltenv.trajectory.Trajectory`.

Example:
    >>> from ltenv.agents import make_policy, run_episode
    >>> policy = make_policy("openai:my-model", base_url="http://127.0.0.1:8000/v1")   # doctest: +SKIP
    >>> traj = run_episode("envs_registry/coding/some-task", policy, scaffold="terminus")  # doctest: +SKIP
"""

from ltenv.agents.loop import CastWriter, run_episode
from ltenv.agents.policies import (
    Completion,
    ContextOverflow,
    EpisodeContext,
    HFPolicy,
    NopPolicy,
    OpenAIPolicy,
    OraclePolicy,
    Policy,
    PolicyError,
    ReplayPolicy,
    make_policy,
)
from ltenv.agents.scaffolds import (
    BASH_SENTINEL,
    SCAFFOLDS,
    Action,
    ActionResult,
    BareScaffold,
    BashScaffold,
    Parsed,
    ParseError,
    PlainScaffold,
    Scaffold,
    TerminusScaffold,
    get_scaffold,
)

__all__ = [
    "BASH_SENTINEL",
    "SCAFFOLDS",
    "Action",
    "ActionResult",
    "BareScaffold",
    "BashScaffold",
    "CastWriter",
    "Completion",
    "ContextOverflow",
    "EpisodeContext",
    "HFPolicy",
    "NopPolicy",
    "OpenAIPolicy",
    "OraclePolicy",
    "ParseError",
    "Parsed",
    "PlainScaffold",
    "Policy",
    "PolicyError",
    "ReplayPolicy",
    "Scaffold",
    "TerminusScaffold",
    "get_scaffold",
    "make_policy",
    "run_episode",
]
