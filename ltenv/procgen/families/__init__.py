"""The bundled procedural families; importing this package registers them."""

from __future__ import annotations

from ltenv.procgen.families import (  # noqa: F401  (imported for registration)
    best_checkpoint,
    config_set,
    csv_sum,
    find_file,
    fix_permission,
    git_recover,
    json_field,
    log_count,
)
