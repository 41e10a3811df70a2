"""``fix-permission``: set the octal mode of one script (chmod), leaving the file and its neighbours alone."""

from __future__ import annotations

import random

from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.families._util import distinct_words, sha256_line, word

MODES = ("700", "710", "711", "740", "750", "751", "755", "775")


@register
class FixPermission(Family):
    """Teaches ``chmod MODE FILE`` with mode and path copied from the task; the content must not change."""

    name = "fix-permission"
    domain = "system_admin"
    difficulty = "easy"
    description = (
        "Set the mode of a script to a given octal mode without touching its content or other files."
    )

    def generate(self, rng: random.Random, seed: int) -> Instance:
        names = distinct_words(rng, rng.randint(2, 4))
        mode = rng.choice(MODES)
        files = {f"/app/bin/{n}.sh": f"#!/bin/sh\necho {word(rng)} {rng.randint(1, 999)}\n" for n in names}
        target = f"/app/bin/{names[0]}.sh"
        check = "#!/bin/bash\n" + sha256_line(files[target], target)
        check += f'[ "$(stat -c %a {target})" = "{mode}" ] || exit 1\n'
        for other in list(files)[1:]:
            check += f'[ "$(stat -c %a {other})" = "644" ] || exit 1\n'
        return self.make(
            seed,
            instruction=f"Set the mode of {target} to {mode}. Do not change other files.",
            files=files,
            setup="chmod 644 /app/bin/*.sh\n",
            commands=(f"chmod {mode} {target}",),
            check=check,
            tags=("chmod", "permissions"),
            metadata={"answer": mode, "path": target},
        )
