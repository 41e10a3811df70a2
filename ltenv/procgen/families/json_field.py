"""``json-field``: read a small JSON file, then write one field's value (two turns)."""

from __future__ import annotations

import json
import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import answer_check, distinct_words, fresh_value, word


@register
class JsonField(Family):
    """Teaches look-then-act: ``cat`` the file, find the key in the output, ``echo`` its value to a file.
    The value appears only in the first command's output, never in the instruction."""

    name = "json-field"
    domain = "coding"
    difficulty = "medium"
    description = "Write the value of one field of a small JSON file to /app/answer.txt."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        name = word(rng, 2, 3)
        keys = distinct_words(rng, rng.randint(3, 6), avoid={name})
        target = rng.randrange(len(keys))
        path = f"/app/data/{name}.json"
        instruction = (
            f"Write the value of the `{keys[target]}` field of {path} to /app/answer.txt (no quotes)."
        )
        values: list[str | int] = []
        for _ in keys:
            v = fresh_value(rng, instruction)
            values.append(int(v) if v.isdigit() else v)
        answer = str(values[target])
        return self.make(
            seed,
            instruction=instruction,
            files={path: json.dumps(dict(zip(keys, values, strict=True))) + "\n"},
            commands=(f"cat {path}", f"echo {answer} > /app/answer.txt"),
            check=answer_check(answer),
            tags=("json", "read-then-write"),
            metadata={"answer": answer, "key": keys[target]},
        )
