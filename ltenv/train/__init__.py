"""Training utilities shared by the trainers in ``training/`` (SFT, DMPO).

- :func:`build_chat`: one conversation → token ids, assistant-only labels and per-turn indices, rendered
  with the model's own chat template so every turn's prompt is exactly what the policy was given.
- :func:`build_turns`: one sequence per assistant turn, for templates that rewrite history.
- :func:`collate`: right-padded tensors from a batch of :class:`ChatTokens`.
- :mod:`ltenv.train.truncate`: the truncation policy that fits long conversations (and preference pairs)
  into ``max_length`` by eliding middle observations, then dropping middle turns.
"""

from ltenv.train.chat import ChatBuildError, ChatTokens, PrefixBreakError, build_chat, build_turns, collate

__all__ = ["ChatBuildError", "ChatTokens", "PrefixBreakError", "build_chat", "build_turns", "collate"]
