"""``config-set``: change one ``key=value`` line of a service config in place (sed -i)."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import sha256_line, word


@register
class ConfigSet(Family):
    """Teaches ``sed -i 's/^port=.*/port=NEW/' FILE``: an anchored in-place edit that keeps every other line."""

    name = "config-set"
    domain = "networking"
    difficulty = "easy"
    description = "Change the port of a service config file, leaving the other lines unchanged."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        svc = word(rng, 2, 3)
        old, new = rng.sample(range(1024, 65536), 2)
        entries = [
            f"host=10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"port={old}",
            f"timeout={rng.randint(5, 120)}",
            f"user={word(rng)}",
        ]
        if rng.random() < 0.5:
            entries.append(f"{rng.choice(('admin', 'backup', 'metrics'))}_port={rng.randint(1024, 65535)}")
        if rng.random() < 0.5:
            entries.append(f"name={svc}")
        rng.shuffle(entries)
        path = f"/app/etc/{svc}.conf"
        before = "\n".join(entries) + "\n"
        after = "".join(f"port={new}\n" if e == f"port={old}" else e + "\n" for e in entries)
        return self.make(
            seed,
            instruction=f"In {path}, change port to {new}; leave the other lines unchanged.",
            files={path: before},
            commands=(f"sed -i 's/^port=.*/port={new}/' {path}",),
            check="#!/bin/bash\n" + sha256_line(after, path),
            tags=("sed", "config"),
            metadata={"answer": new, "old_port": old},
        )
