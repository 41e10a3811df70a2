"""The synthesis pipeline's stages: for each, a prompt template file (``ltenv/synth/prompts/<stage>.md``) and
the JSON schema its reply must satisfy.

Templates use :class:`string.Template` placeholders (``$domain``, ``${candidate}``); a literal dollar sign is
written ``$$``. Every rendered prompt starts with ``# Stage: <name>`` and ends with the stage's schema, so a
model (or a scripted test server) can tell the stages apart and knows the exact reply shape.

Stage order (see :mod:`ltenv.synth.pipeline`): ``propose`` → ``judge`` → (near-duplicate filter) →
``instruction`` → ``environment`` → ``solution`` → ``tests`` → ``attack`` → ``task_toml`` → execution
validation, then ``refine`` (tests too weak: an attack or the do-nothing agent passed) or ``repair`` (any
other execution failure) for a bounded number of rounds.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template
from typing import Any

PROMPTS_PACKAGE = "ltenv.synth"
PROMPTS_DIR = "prompts"

_NAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{2,62}$"}
_TEXT = {"type": "string", "minLength": 1}
_FILE = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "maxLength": 200},
        "content": {"type": "string"},
        "executable": {"type": "boolean"},
    },
    "required": ["path", "content"],
}
_FILES = {"type": "array", "items": _FILE, "maxItems": 40}

SCHEMAS: dict[str, dict[str, Any]] = {
    "propose": {
        "type": "object",
        "properties": {
            "ideas": {
                "type": "array",
                "minItems": 1,
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": _NAME,
                        "title": _TEXT,
                        "summary": _TEXT,
                        "skills": {"type": "array", "items": {"type": "string"}},
                        "difficulty": {"enum": ["easy", "medium", "hard"]},
                    },
                    "required": ["name", "title", "summary", "difficulty"],
                },
            }
        },
        "required": ["ideas"],
    },
    "judge": {
        "type": "object",
        "properties": {
            "verdicts": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "clear": {"type": "boolean"},
                        "moderate_complexity": {"type": "boolean"},
                        "self_contained": {"type": "boolean"},
                        "verifiable": {"type": "boolean"},
                        "score": {"type": "integer", "minimum": 1, "maximum": 10},
                        "reason": {"type": "string"},
                    },
                    "required": [
                        "index",
                        "clear",
                        "moderate_complexity",
                        "self_contained",
                        "verifiable",
                        "score",
                        "reason",
                    ],
                },
            }
        },
        "required": ["verdicts"],
    },
    "instruction": {
        "type": "object",
        "properties": {
            "instruction": {"type": "string", "minLength": 40},
            "constraints": {"type": "array", "minItems": 1, "items": _TEXT},
        },
        "required": ["instruction", "constraints"],
    },
    "environment": {
        "type": "object",
        "properties": {
            "dockerfile": {"type": "string", "minLength": 10},
            "files": _FILES,
            "notes": {"type": "string"},
        },
        "required": ["dockerfile", "files"],
    },
    "solution": {
        "type": "object",
        "properties": {"solve_sh": {"type": "string", "minLength": 10}, "explanation": {"type": "string"}},
        "required": ["solve_sh"],
    },
    "tests": {
        "type": "object",
        "properties": {
            "test_outputs_py": {"type": "string", "minLength": 20},
            "test_sh": {"type": ["string", "null"]},
            "files": _FILES,
        },
        "required": ["test_outputs_py"],
    },
    "attack": {
        "type": "object",
        "properties": {
            "attacks": {
                "type": "array",
                "minItems": 2,
                "maxItems": 6,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": _NAME,
                        "kind": {"enum": ["wrong", "partial", "shortcut"]},
                        "description": _TEXT,
                        "script": {"type": "string", "minLength": 1},
                    },
                    "required": ["name", "kind", "description", "script"],
                },
            }
        },
        "required": ["attacks"],
    },
    "task_toml": {
        "type": "object",
        "properties": {
            "difficulty": {"enum": ["easy", "medium", "hard"]},
            "category": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,40}$"},
            "tags": {
                "type": "array",
                "maxItems": 8,
                "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9+._-]{0,30}$"},
            },
            "agent_timeout_sec": {"type": "integer", "minimum": 60, "maximum": 7200},
            "verifier_timeout_sec": {"type": "integer", "minimum": 10, "maximum": 1800},
            "memory_mb": {"type": "integer", "minimum": 256, "maximum": 16384},
            "cpus": {"type": "number", "minimum": 0.5, "maximum": 8},
        },
        "required": ["difficulty", "category", "tags", "agent_timeout_sec", "verifier_timeout_sec"],
    },
}
"""The reply schema of every stage that asks the model for JSON."""

# refine: the tests again (same shape as the draft) plus what changed and why.
SCHEMAS["refine"] = {
    "type": "object",
    "properties": {**SCHEMAS["tests"]["properties"], "analysis": _TEXT},
    "required": ["analysis", "test_outputs_py"],
}
# repair: any artifact may be replaced; omitted keys keep the current version.
SCHEMAS["repair"] = {
    "type": "object",
    "properties": {
        "analysis": _TEXT,
        "instruction": {"type": "string", "minLength": 40},
        "dockerfile": {"type": "string", "minLength": 10},
        "files": _FILES,
        "solve_sh": {"type": "string", "minLength": 10},
        "test_outputs_py": {"type": "string", "minLength": 20},
        "test_sh": {"type": ["string", "null"]},
        "test_files": _FILES,
    },
    "required": ["analysis"],
}

STAGES: tuple[str, ...] = (
    "propose",
    "judge",
    "instruction",
    "environment",
    "solution",
    "tests",
    "attack",
    "task_toml",
    "refine",
    "repair",
)


@cache
def template(stage: str) -> Template:
    """The prompt template of ``stage`` (``prompts/<stage>.md``); ``system`` is the shared system prompt."""
    text = resources.files(PROMPTS_PACKAGE).joinpath(PROMPTS_DIR, f"{stage}.md").read_text(encoding="utf-8")
    return Template(text)


def schema_block(stage: str) -> str:
    return (
        "Reply with one JSON object and nothing else (no prose, no markdown fence needed). It must validate "
        "against this JSON Schema:\n```json\n" + json.dumps(SCHEMAS[stage], separators=(", ", ": ")) + "\n```"
    )


def render(stage: str, **values: str) -> str:
    """The user prompt of ``stage``: its template filled with ``values`` plus the reply schema.

    A placeholder without a value raises ``KeyError`` naming it (a template and its caller out of step is
    a programming error, never a silently empty prompt)."""
    body = template(stage).substitute(values).strip()
    return f"# Stage: {stage}\n\n{body}\n\n{schema_block(stage)}\n"


def system_prompt(**values: str) -> str:
    return template("system").substitute(values).strip() + "\n"


__all__ = ["SCHEMAS", "STAGES", "render", "schema_block", "system_prompt", "template"]
