"""``git-recover``: find a value that a past commit deleted, via ``git log -p`` (two turns)."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import answer_check, distinct_words, fresh_value, word

EXTENSIONS = ("conf", "env", "ini", "cfg")
GIT_ENV = (
    "export GIT_AUTHOR_NAME=dev GIT_AUTHOR_EMAIL=dev@example.org "
    "GIT_COMMITTER_NAME=dev GIT_COMMITTER_EMAIL=dev@example.org\n"
)


def _write(path: str, lines: list[str]) -> str:
    return "printf '%s\\n' " + " ".join(lines) + f" > {path}\n"


def _commit(n: int, message: str) -> str:
    date = f"2024-03-{n + 1:02d}T10:00:00+0000"
    return f"git add -A && GIT_AUTHOR_DATE={date} GIT_COMMITTER_DATE={date} git commit -q -m '{message}'\n"


@register
class GitRecover(Family):
    """Teaches history search: ``git log -p | grep '^-KEY='`` shows the deleted line, then the value is
    written to a file. The value appears only in that output, never in the instruction."""

    name = "git-recover"
    domain = "version_control"
    difficulty = "medium"
    description = "Recover the value of a config line that a commit deleted, from the git history."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        stem = word(rng, 2, 3)
        fname = f"{stem}.{rng.choice(EXTENSIONS)}"
        keys = distinct_words(rng, rng.randint(3, 5), avoid={stem})
        target, changed = keys[0], keys[1]
        instruction = (
            f"A commit in /app/repo deleted the {target} line from {fname}. "
            "Write the deleted value to /app/answer.txt."
        )
        values = {k: fresh_value(rng, instruction) for k in keys}
        order = keys[:]
        rng.shuffle(order)
        lines = [f"{k}={values[k]}" for k in order]
        s = "set -e\nmkdir -p /app/repo && cd /app/repo\n" + GIT_ENV
        s += "git -c init.defaultBranch=main init -q\n"
        s += _write(fname, lines) + _commit(0, f"add {fname}")
        steps = ["readme", "change"]
        rng.shuffle(steps)
        n = 1
        for step in steps:
            if step == "readme":
                s += f"printf '# {word(rng)}\\n' > README.md\n" + _commit(n, "add readme")
            else:
                new = fresh_value(rng, instruction + values[target])
                lines = [f"{changed}={new}" if ln.startswith(f"{changed}=") else ln for ln in lines]
                s += _write(fname, lines) + _commit(n, f"update {changed}")
            n += 1
        lines = [ln for ln in lines if not ln.startswith(f"{target}=")]
        s += _write(fname, lines) + _commit(n, rng.choice(("cleanup", f"remove {target}", "drop unused key")))
        if rng.random() < 0.5:
            extra = word(rng, 2, 3)
            while extra in keys:
                extra = word(rng, 2, 3)
            lines.append(f"{extra}={fresh_value(rng, instruction + values[target])}")
            s += _write(fname, lines) + _commit(n + 1, f"add {extra}")
        answer = values[target]
        return self.make(
            seed,
            instruction=instruction,
            files={},
            setup=s,
            commands=(f"git -C /app/repo log -p | grep '^-{target}='", f"echo {answer} > /app/answer.txt"),
            check=answer_check(answer),
            tags=("git", "history", "read-then-write"),
            metadata={"answer": answer, "key": target, "file": fname},
        )
