"""``log-count``: count the log lines carrying one error code (grep -c, redirect to a file)."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import answer_check, word

LEVELS = ("INFO", "WARN", "ERROR", "DEBUG")


@register
class LogCount(Family):
    """Teaches ``grep -c 'PATTERN' FILE > /app/answer.txt`` with the pattern and file copied from the task."""

    name = "log-count"
    domain = "data_science"
    difficulty = "easy"
    description = "Count the lines of a log file that contain a given ERROR code; write the count to a file."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        log = word(rng, 2, 3)
        codes = rng.sample(range(100, 1000), 4)
        target = f"E{codes[0]}"
        others = [f"E{c}" for c in codes[1:]]
        count = rng.randint(1, 12)
        n = rng.randint(20, 36)
        lines: list[tuple[str, str]] = [("ERROR", target)] * count
        while len(lines) < n:
            level = rng.choice(LEVELS)
            code = rng.choice(others + [target] * (level != "ERROR"))
            lines.append((level, code))
        rng.shuffle(lines)
        t = rng.randint(0, 20000)
        out = []
        for level, code in lines:
            t += rng.randint(1, 400)
            out.append(
                f"{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d} {level} {code} {word(rng, 1, 2)}"
            )
        path = f"/app/logs/{log}.log"
        return self.make(
            seed,
            instruction=(
                f"Count the lines of {path} that contain `ERROR {target}` and write the number to /app/answer.txt."
            ),
            files={path: "\n".join(out) + "\n"},
            commands=(f"grep -c 'ERROR {target}' {path} > /app/answer.txt",),
            check=answer_check(str(count)),
            tags=("grep", "logs", "count"),
            metadata={"answer": count, "code": target, "lines": n},
        )
