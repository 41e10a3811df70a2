"""``find-file``: locate the one setuid file in a directory (find -perm), then write its path (two turns)."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import answer_check, distinct_words, word


@register
class FindFile(Family):
    """Teaches ``find DIR -perm -4000`` to audit setuid binaries, then copying the path it prints.
    Distractors: executables, plain files and sometimes a setgid file (which ``-perm -4000`` skips)."""

    name = "find-file"
    domain = "security"
    difficulty = "medium"
    description = "Find the only setuid file in a directory and write its path to /app/answer.txt."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        d = word(rng, 2, 3)
        names = distinct_words(rng, rng.randint(4, 7), avoid={d})
        suid = names[rng.randrange(len(names))]
        files = {f"/app/{d}/{n}": f"#!/bin/sh\necho {word(rng)}\n" for n in names}
        executable = frozenset(p for p in files if rng.random() < 0.6)
        setup = f"chmod 4755 /app/{d}/{suid}\n"
        others = [n for n in names if n != suid]
        if rng.random() < 0.5:
            setup += f"chmod 2755 /app/{d}/{rng.choice(others)}\n"
        answer = f"/app/{d}/{suid}"
        return self.make(
            seed,
            instruction=f"Exactly one file in /app/{d} has the setuid bit set. Write its full path to /app/answer.txt.",
            files=files,
            setup=setup,
            executable=executable - {answer},
            commands=(f"find /app/{d} -perm -4000", f"echo {answer} > /app/answer.txt"),
            check=answer_check(answer),
            tags=("find", "setuid", "audit"),
            metadata={"answer": answer},
        )
