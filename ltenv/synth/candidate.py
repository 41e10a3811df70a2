"""A synthesis candidate: the artifacts the LLM stages produce, their static checks, and the task folder they
make (the registry's Harbor format, so an accepted candidate is an ordinary task).

Static checks run before anything is executed and name the stage and field at fault, e.g. ``environment:
$.dockerfile: COPY source 'data/orders.csv' is not among the files``. They raise :class:`ArtifactError`,
which the pipeline feeds back to the model once and otherwise records as a ``bad_output`` rejection.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ltenv.errors import LtenvError

MAX_FILE_BYTES = 512 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024

DEFAULT_TEST_SH = """#!/bin/bash
# Verifier entry point: runs offline inside the task sandbox, writes the reward.
mkdir -p /logs/verifier
cd /app
python3 -m pytest -q -p no:cacheprovider --junitxml=/logs/verifier/junit.xml /tests/test_outputs.py -rA
if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
"""


class ArtifactError(LtenvError):
    """A stage's output is unusable as a task artifact (a bad path, a Dockerfile copying a missing file...)."""

    def __init__(self, stage: str, field: str, message: str, *, verdict: str = "bad_output"):
        self.stage = stage
        self.field = field
        self.verdict = verdict
        """The rejection reason this error means: ``bad_output``, or ``needs_network`` for a download."""
        self.reason = f"{field}: {message}"
        super().__init__(f"stage {stage!r}: {field}: {message}")


@dataclass
class FileArtifact:
    path: str
    content: str
    executable: bool = False


@dataclass
class Candidate:
    """Everything known about one candidate task. Fields fill in stage by stage."""

    id: str
    domain: str
    seed: dict[str, Any]
    idea: dict[str, Any] | None = None
    name: str | None = None
    instruction: str | None = None
    constraints: list[str] = field(default_factory=list)
    dockerfile: str | None = None
    files: list[FileArtifact] = field(default_factory=list)
    solve_sh: str | None = None
    test_outputs_py: str | None = None
    test_sh: str | None = None
    test_files: list[FileArtifact] = field(default_factory=list)
    attacks: dict[str, str] = field(default_factory=dict)
    attack_kinds: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------ prompt view
    def prompt_view(self) -> str:
        """The candidate as the next stage sees it: a JSON document of every artifact made so far."""
        view: dict[str, Any] = {"domain": self.domain}
        if self.idea:
            view["idea"] = self.idea
        if self.instruction is not None:
            view["instruction_md"] = self.instruction
            view["constraints"] = self.constraints
        if self.dockerfile is not None:
            view["environment"] = {
                "Dockerfile": self.dockerfile,
                "files": [_file_view(f) for f in self.files],
            }
        if self.solve_sh is not None:
            view["solution/solve.sh"] = self.solve_sh
        if self.test_outputs_py is not None:
            view["tests"] = {
                "test_outputs.py": self.test_outputs_py,
                "test.sh": self.test_sh or "(the standard runner)",
                "files": [_file_view(f) for f in self.test_files],
            }
        if self.attacks:
            view["attacks"] = {
                n: {"kind": self.attack_kinds.get(n, ""), "script": s} for n, s in self.attacks.items()
            }
        return json.dumps(view, indent=1, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ------------------------------------------------------------------------------------- applying
    def set_environment(self, data: dict[str, Any], *, base_image: str, stage: str = "environment") -> None:
        files = _files(data.get("files") or [], stage, "$.files")
        check_dockerfile(data["dockerfile"], files, base_image=base_image, stage=stage)
        self.dockerfile = data["dockerfile"]
        self.files = files

    def set_tests(self, data: dict[str, Any], *, stage: str = "tests", files_key: str = "files") -> None:
        test_files = _files(data.get(files_key) or [], stage, f"$.{files_key}")
        for f in test_files:
            if f.path in ("test.sh", "test_outputs.py"):
                raise ArtifactError(stage, f"$.{files_key}", f"{f.path!r} is given by its own key")
        test_sh = data.get("test_sh")
        if test_sh is not None and "/logs/verifier/reward" not in test_sh:
            raise ArtifactError(stage, "$.test_sh", "never writes /logs/verifier/reward.txt")
        _check_python(data["test_outputs_py"], stage, "$.test_outputs_py")
        self.test_outputs_py = data["test_outputs_py"]
        self.test_sh = test_sh or None
        self.test_files = test_files

    def apply_repair(self, data: dict[str, Any], *, base_image: str) -> list[str]:
        """Apply a ``repair`` reply; returns the names of the artifacts it replaced."""
        changed: list[str] = []
        if "instruction" in data:
            self.instruction = data["instruction"]
            changed.append("instruction.md")
        if "dockerfile" in data or "files" in data:
            env = {"dockerfile": data.get("dockerfile", self.dockerfile), "files": data.get("files")}
            if env["files"] is None:
                env["files"] = [asdict(f) for f in self.files]
            self.set_environment(env, base_image=base_image, stage="repair")
            changed.append("environment")
        if "solve_sh" in data:
            self.solve_sh = data["solve_sh"]
            changed.append("solution/solve.sh")
        if {"test_outputs_py", "test_sh", "test_files"} & data.keys():
            tests = {
                "test_outputs_py": data.get("test_outputs_py", self.test_outputs_py),
                "test_sh": data.get("test_sh", self.test_sh),
                "test_files": data.get("test_files", [asdict(f) for f in self.test_files]),
            }
            self.set_tests(tests, stage="repair", files_key="test_files")
            changed.append("tests")
        return changed

    # ---------------------------------------------------------------------------------------- write
    def task_toml(self, *, author: str = "LiteCoder-Terminal-Gen") -> str:
        meta = self.meta or {}
        tags = ", ".join(json.dumps(t) for t in meta.get("tags", []))
        lines = [
            'version = "1.0"',
            "",
            "[metadata]",
            f"domain = {json.dumps(self.domain)}",
            f"difficulty = {json.dumps(meta.get('difficulty', self.seed.get('difficulty', 'medium')))}",
            f"category = {json.dumps(meta.get('category', 'general'))}",
            f"tags = [{tags}]",
            f"author_name = {json.dumps(author)}",
            f"synth_id = {json.dumps(self.id)}",
        ]
        if self.seed.get("skill"):
            lines.append(f"synth_skill = {json.dumps(self.seed['skill'])}")
        lines += [
            "",
            "[agent]",
            f"timeout_sec = {int(meta.get('agent_timeout_sec', 900))}",
            "",
            "[verifier]",
            f"timeout_sec = {int(meta.get('verifier_timeout_sec', 120))}",
            "",
            "[environment]",
            "build_timeout_sec = 600",
            f"cpus = {float(meta.get('cpus', 1)):g}",
            f"memory_mb = {int(meta.get('memory_mb', 2048))}",
            "allow_internet = false",
            "",
        ]
        return "\n".join(lines)

    def write(self, dest: Path) -> Path:
        """Write the task folder ``dest`` (replacing it): the registry format, loadable by ``load_task``."""
        missing = [
            k
            for k in ("instruction", "dockerfile", "solve_sh", "test_outputs_py")
            if getattr(self, k) is None
        ]
        if missing:
            raise ValueError(f"candidate {self.id} is incomplete: no {', '.join(missing)}")
        if dest.exists():
            shutil.rmtree(dest)
        (dest / "environment").mkdir(parents=True)
        (dest / "solution").mkdir()
        (dest / "tests").mkdir()
        (dest / "task.toml").write_text(self.task_toml(), encoding="utf-8")
        (dest / "instruction.md").write_text(_nl(self.instruction or ""), encoding="utf-8")
        (dest / "environment" / "Dockerfile").write_text(_nl(self.dockerfile or ""), encoding="utf-8")
        for f in self.files:
            _write_file(dest / "environment", f)
        _write_file(dest / "solution", FileArtifact("solve.sh", self.solve_sh or "", True))
        _write_file(dest / "tests", FileArtifact("test.sh", self.test_sh or DEFAULT_TEST_SH, True))
        _write_file(dest / "tests", FileArtifact("test_outputs.py", self.test_outputs_py or ""))
        for f in self.test_files:
            _write_file(dest / "tests", f)
        return dest


def _nl(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _write_file(root: Path, f: FileArtifact) -> None:
    path = root / f.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_nl(f.content) if f.path.endswith((".sh", ".py")) else f.content, encoding="utf-8")
    if f.executable or f.path.endswith(".sh"):
        path.chmod(0o755)


def _file_view(f: FileArtifact) -> dict[str, Any]:
    content = f.content if len(f.content) <= 6000 else f.content[:6000] + f"\n... ({len(f.content)} chars)"
    return {"path": f.path, "executable": f.executable, "content": content}


# --------------------------------------------------------------------------------------- static checks
def _files(items: list[dict[str, Any]], stage: str, where: str) -> list[FileArtifact]:
    out: list[FileArtifact] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    total = 0
    for i, item in enumerate(items):
        loc = f"{where}[{i}].path"
        raw = str(item["path"]).strip()
        p = PurePosixPath(raw)
        if not raw or not p.parts or p.is_absolute() or ".." in p.parts or raw.startswith("~"):
            raise ArtifactError(stage, loc, f"{raw!r} must be a relative path inside the folder")
        norm = str(p)
        if norm in ("Dockerfile", ".dockerignore") or norm.startswith(("solution/", "tests/")):
            raise ArtifactError(stage, loc, f"{norm!r} may not be written here")
        if norm in seen:
            raise ArtifactError(stage, loc, f"{norm!r} is listed twice")
        parents = {str(q) for q in p.parents if str(q) != "."}
        if norm in dirs or parents & seen:
            raise ArtifactError(stage, loc, f"{norm!r} is both a file and a folder")
        seen.add(norm)
        dirs |= parents
        size = len(item["content"].encode("utf-8"))
        if size > MAX_FILE_BYTES:
            raise ArtifactError(stage, loc, f"{norm!r} is {size} bytes (limit {MAX_FILE_BYTES})")
        total += size
        out.append(FileArtifact(norm, item["content"], bool(item.get("executable", False))))
    if total > MAX_TOTAL_BYTES:
        raise ArtifactError(stage, where, f"the files total {total} bytes (limit {MAX_TOTAL_BYTES})")
    return out


def _check_python(source: str, stage: str, where: str) -> None:
    try:
        compile(source, "test_outputs.py", "exec")
    except SyntaxError as e:
        raise ArtifactError(stage, where, f"not valid Python: line {e.lineno}: {e.msg}") from None
    if not re.search(r"^\s*def test_\w*\s*\(", source, re.MULTILINE):
        raise ArtifactError(stage, where, "defines no test function (def test_...)")


_INSTR_RE = re.compile(r"^\s*([A-Za-z]+)\s+(.*)$")
_NETWORK_RUN = re.compile(
    r"\b(apt-get|apt|apk|yum|dnf|pip3?|npm|yarn|cargo|go\s+get|curl|wget|git\s+clone)\b(?!-)", re.I
)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # like Docker: comment and empty lines are dropped, also inside a continuation
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def check_dockerfile(
    text: str, files: list[FileArtifact], *, base_image: str, stage: str = "environment"
) -> None:
    """Static checks of a generated Dockerfile: its first instruction is ``FROM <base_image>``, every
    ``COPY``/``ADD`` source is among ``files`` (globs allowed), nothing is downloaded."""
    lines = _logical_lines(text)
    if not lines:
        raise ArtifactError(stage, "$.dockerfile", "is empty")
    names = [f.path for f in files]
    dirs = {str(parent) for f in files for parent in PurePosixPath(f.path).parents if str(parent) != "."}
    for i, (lineno, line) in enumerate(lines):
        m = _INSTR_RE.match(line)
        if not m:
            raise ArtifactError(
                stage, "$.dockerfile", f"line {lineno}: not a Dockerfile instruction: {line!r}"
            )
        instr, args = m.group(1).upper(), m.group(2).strip()
        if i == 0:
            ref = args.split()[0] if args.split() else ""
            if instr != "FROM" or ref != base_image:
                raise ArtifactError(
                    stage, "$.dockerfile", f"line {lineno}: the first instruction must be FROM {base_image}"
                )
            continue
        if instr == "FROM":
            raise ArtifactError(stage, "$.dockerfile", f"line {lineno}: multi-stage builds are not allowed")
        if instr == "RUN" and _NETWORK_RUN.search(args):
            raise ArtifactError(
                stage,
                "$.dockerfile",
                f"line {lineno}: RUN downloads or installs packages ({_NETWORK_RUN.search(args).group(0)}); "
                "the build is offline",
                verdict="needs_network",
            )
        if instr in ("COPY", "ADD"):
            if args.startswith("["):
                try:
                    parts = json.loads(args)
                except ValueError:
                    raise ArtifactError(stage, "$.dockerfile", f"line {lineno}: bad JSON form") from None
            else:
                parts = shlex.split(args)
            parts = [p for p in parts if not p.startswith("--")]
            if any(p.startswith("--from") for p in shlex.split(args) if not args.startswith("[")):
                raise ArtifactError(stage, "$.dockerfile", f"line {lineno}: COPY --from is not allowed")
            if len(parts) < 2:
                raise ArtifactError(
                    stage, "$.dockerfile", f"line {lineno}: {instr} needs a source and a target"
                )
            for src in parts[:-1]:
                if re.match(r"^[a-z]+://", src):
                    raise ArtifactError(stage, "$.dockerfile", f"line {lineno}: {instr} of a URL ({src})")
                if not _source_exists(src, names, dirs):
                    raise ArtifactError(
                        stage,
                        "$.dockerfile",
                        f"line {lineno}: {instr} source {src!r} is not among the files "
                        f"({', '.join(names) or 'no files were given'})",
                    )


def _source_exists(src: str, names: list[str], dirs: set[str]) -> bool:
    s = src.strip().rstrip("/")
    while s.startswith("./"):
        s = s[2:]
    if s in ("", "."):
        return True
    if any(ch in s for ch in "*?["):
        return any(glob_match(p, s) for p in (*names, *dirs))
    return s in names or s in dirs


def glob_match(path: str, pattern: str) -> bool:
    """Docker's COPY source matching: the pattern is matched against the whole path from the context
    root, part by part (a ``*`` never crosses a ``/``)."""
    import fnmatch

    parts, pats = PurePosixPath(path).parts, PurePosixPath(pattern).parts
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pats, strict=True)
    )


__all__ = ["DEFAULT_TEST_SH", "ArtifactError", "Candidate", "FileArtifact", "check_dockerfile"]
