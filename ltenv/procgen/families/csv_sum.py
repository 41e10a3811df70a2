"""``csv-sum``: sum one numbered column of a CSV file with awk, skipping the header."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import answer_check, distinct_words, word


@register
class CsvSum(Family):
    """Teaches ``awk -F, 'NR>1{s+=$K}END{print s}' FILE > /app/answer.txt`` with K and FILE from the task."""

    name = "csv-sum"
    domain = "data_science"
    difficulty = "easy"
    description = "Sum a numbered column of a CSV file (header excluded) into /app/answer.txt."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        name = word(rng, 2, 3)
        cols = distinct_words(rng, rng.randint(2, 4))
        k = rng.randint(1, len(cols))
        rows = [[rng.randint(0, 999) for _ in cols] for _ in range(rng.randint(4, 9))]
        total = sum(r[k - 1] for r in rows)
        path = f"/app/data/{name}.csv"
        text = ",".join(cols) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
        return self.make(
            seed,
            instruction=(
                f"Write the sum of column {k} ({cols[k - 1]}) of {path}, header line excluded, "
                "to /app/answer.txt."
            ),
            files={path: text},
            commands=(f"awk -F, 'NR>1{{s+=${k}}}END{{print s}}' {path} > /app/answer.txt",),
            check=answer_check(str(total)),
            tags=("awk", "csv", "sum"),
            metadata={"answer": total, "column": k},
        )
