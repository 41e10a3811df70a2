"""``best-checkpoint``: pick the checkpoint with the lowest validation loss from a metrics file (two turns)."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import distinct_words, sha256_line, word

RUNS = "/app/runs"


@register
class BestCheckpoint(Family):
    """Teaches reading a metrics table before acting: ``sort -t, -k2 -g`` puts the best checkpoint first,
    and its name, which appears nowhere in the instruction, must be copied from that output into a ``cp``.
    The instruction is the same for every seed; only the files differ. Near-misses fail: the runner-up's
    loss is close to the best one, and every checkpoint file has different content."""

    name = "best-checkpoint"
    domain = "ai_ml"
    difficulty = "easy"
    description = "Copy the checkpoint with the lowest validation loss (from a metrics CSV) to /app/best.pt."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        names = distinct_words(rng, rng.randint(4, 7))
        best_loss = rng.randint(2000, 9000)  # in 1/10000
        gaps = sorted(rng.sample(range(3, 4000), len(names) - 1))
        losses = [best_loss, *(best_loss + g for g in gaps)]
        order = list(range(len(names)))
        rng.shuffle(order)
        rows = [f"{names[i]},{losses[i] / 10000:.4f}" for i in order]
        files: dict[str, str] = {f"{RUNS}/metrics.csv": "\n".join(rows) + "\n"}
        for n in names:
            files[f"{RUNS}/{n}.pt"] = f"weights {n} {word(rng)} {rng.randint(10**5, 10**6 - 1)}\n"
        best = f"{RUNS}/{names[0]}.pt"
        check = "#!/bin/bash\n" + sha256_line(files[best], "/app/best.pt")
        for path, content in files.items():  # the checkpoints and the metrics stay as they were
            check += sha256_line(content, path)
        return self.make(
            seed,
            instruction=(
                f"Each line of {RUNS}/metrics.csv is a checkpoint name and its validation loss. Copy the "
                f"checkpoint with the lowest loss, {RUNS}/NAME.pt, to /app/best.pt."
            ),
            files=files,
            commands=(f"sort -t, -k2 -g {RUNS}/metrics.csv | head -1", f"cp {best} /app/best.pt"),
            check=check,
            tags=("ml", "metrics", "read-then-write"),
            metadata={"answer": names[0], "loss": losses[0] / 10000},
        )
