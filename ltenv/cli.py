"""The ``ltenv`` command line: list, validate and play tasks; roll out policies; build, export and bootstrap images."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ltenv.cli_datasets import datasets_app

app = typer.Typer(
    help="LiteCoder-Terminal: executable, verifiable terminal environments for language agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Build task images, export them for the bwrap backend, bootstrap base images.")
app.add_typer(images_app, name="images")
app.add_typer(datasets_app, name="datasets")

console = Console(stderr=True)
out = Console()

TasksOpt = Annotated[
    Path | None,
    typer.Option(
        "--tasks",
        "-t",
        help="A task folder, a folder of tasks, or procgen:<family>[,<family>...|all]:<seeds> "
        "(e.g. procgen:json-field:0-49; default: the bundled registry).",
    ),
]


DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        metavar="NAME[@VERSION]",
        help="A published suite from `ltenv datasets list` (e.g. terminal-bench-core@0.1.1): pulled into the "
        "cache (unless LTENV_OFFLINE=1: then only the cache is used), then loaded like --tasks.",
    ),
]


def _root(tasks: Path | None, dataset: str | None = None) -> Path:
    """The folder (or procgen spec) to load: --tasks, the cached copy of --dataset, or the bundled registry."""
    from ltenv.sandbox.images import registry_root

    if dataset is not None:
        from ltenv.datasets import DatasetError, resolve_tasks

        if tasks is not None:
            console.print("[red]error:[/] give --tasks or --dataset, not both")
            raise typer.Exit(2)
        try:
            return resolve_tasks(dataset)
        except DatasetError as e:
            console.print("[red]error:[/]", escape(str(e)), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return tasks if tasks is not None else registry_root()


def _load(
    tasks: Path | None,
    names: list[str] | None = None,
    *,
    dataset: str | None = None,
    fail_on_errors: bool = True,
):
    from ltenv.procgen.base import ProcgenError
    from ltenv.tasks import load_suite

    root = _root(tasks, dataset)
    try:
        suite = load_suite(root)
    except ProcgenError as e:
        console.print("[red]error:[/]", escape(str(e)), highlight=False)
        raise typer.Exit(2) from None
    if names:
        # A malformed folder nobody asked for is a warning; one that was asked for is the error.
        wanted = set(names)
        for err in suite.errors:
            if err.folder.name not in wanted:
                console.print("[yellow]warning:[/] skipped", escape(str(err)), highlight=False)
        suite.errors = [e for e in suite.errors if e.folder.name in wanted]
    for err in suite.errors:
        console.print("[red]error:[/]", escape(str(err)))
    if suite.errors and ((fail_on_errors and not suite.tasks) or names):
        raise typer.Exit(2)
    selected = suite.tasks
    if names:
        selected = [t for t in suite.tasks if t.name in wanted]
        unknown = wanted - {t.name for t in selected}
        if unknown:
            console.print(f"[red]error:[/] unknown task(s): {', '.join(sorted(unknown))}")
            raise typer.Exit(2)
    return suite, selected


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


ImageMapOpt = Annotated[
    Path | None,
    typer.Option(
        "--image-map",
        help="YAML/JSON/TOML file mapping foreign image refs to local stand-ins (FROM lines, docker_image).",
    ),
]
ForceBuildOpt = Annotated[
    bool,
    typer.Option(
        "--force-build",
        help="Build Harbor tasks from environment/Dockerfile even when task.toml names a prebuilt docker_image.",
    ),
]
HostBuildConfigOpt = Annotated[
    bool,
    typer.Option(
        "--host-build-config/--no-host-build-config",
        help="Lend the host's CA bundle and pip/apt/npm index and proxy settings to image builds as BuildKit "
        "secrets (never stored in the image). Off also with LTENV_HOST_BUILD_CONFIG=0.",
    ),
]


def _image_store(
    image_map: Path | None, force_build: bool, host_build_config: bool, *, log_fn=None
):  # -> ImageStore (imported lazily)
    """The image store of a command, with its build options (``--no-host-build-config`` turns the host's
    settings off; without it ``LTENV_HOST_BUILD_CONFIG`` decides)."""
    from ltenv.sandbox.images import ImageStore

    return ImageStore(
        image_map=image_map,
        force_build=force_build,
        host_build_config=None if host_build_config else False,
        log_fn=log_fn,
    )


OfflineTestsOpt = Annotated[
    bool,
    typer.Option(
        "--offline-tests",
        help="Run test files with the image's python3 -m pytest -rA instead of test scripts that download "
        "their tools (TB run-tests.sh; Harbor test.sh installing uv/pip/apt packages).",
    ),
]


@app.command("list")
def list_cmd(
    tasks: TasksOpt = None,
    dataset: DatasetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    domain: Annotated[str | None, typer.Option(help="Only tasks of this domain.")] = None,
) -> None:
    """List tasks with their domain, difficulty and format (harbor: task.toml; terminal-bench: TB 1.x
    task.yaml). Malformed folders are reported on stderr."""
    suite, selected = _load(tasks, dataset=dataset, fail_on_errors=False)
    if domain:
        selected = [t for t in selected if t.domain == domain]
    rows = [
        {
            "name": t.name,
            "display_name": t.display_name,
            "domain": t.domain,
            "difficulty": t.difficulty,
            "format": t.format,
            "path": str(t.path),
        }
        for t in selected
    ]
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        # A column for [task] name only when some task has one besides its folder name (the id).
        shown = any(r["display_name"] != r["name"] for r in rows)
        cols = ["name", *(["display name"] if shown else []), "domain", "difficulty", "format"]
        table = Table(*cols, title=f"{len(rows)} task(s) in {suite.root}")
        for r in rows:
            extra = [r["display_name"]] if shown else []
            table.add_row(r["name"], *extra, r["domain"] or "-", r["difficulty"], r["format"])
        out.print(table)
    if suite.errors:
        raise typer.Exit(1)


@app.command()
def validate(
    names: Annotated[list[str] | None, typer.Argument(help="Task names (default: all).")] = None,
    tasks: TasksOpt = None,
    dataset: DatasetOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Episodes run in parallel.")] = 2,
    runs: Annotated[int, typer.Option(help="Oracle and nop runs per task.")] = 2,
    backend: Annotated[str, typer.Option(help="Sandbox backend.")] = "bwrap",
    image_map: ImageMapOpt = None,
    force_build: ForceBuildOpt = False,
    host_build_config: HostBuildConfigOpt = True,
    offline_tests: OfflineTestsOpt = False,
    attacks: Annotated[
        bool,
        typer.Option(
            "--attacks",
            help="Also run every built-in reward-hacking attack (ltenv.verify.attacks) on each task, "
            "`--runs` times, each in a fresh sandbox: each must score 0.",
        ),
    ] = False,
    attack: Annotated[
        list[str] | None,
        typer.Option("--attack", help="Run only this built-in attack (repeatable; implies --attacks)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of results on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the oracle and a do-nothing agent on each task, each `--runs` times.

    A task is valid only if the oracle scores 1.0 and nop 0.0 every time (and, with --attacks, every attack
    0.0 every time). Exits 1 if any task is invalid (or any folder is malformed). Image-map substitutions,
    offline verification and attack results are printed per task and included in --json.
    """
    from ltenv.validate import ValidationResult, validate_suite
    from ltenv.verify.attacks import ATTACKS, get_attack

    _setup_logging(verbose)
    chosen = []
    if attack:
        try:
            chosen = [get_attack(n) for n in dict.fromkeys(attack)]
        except KeyError as e:
            console.print("[red]error:[/]", escape(str(e.args[0])), highlight=False)
            raise typer.Exit(2) from None
    elif attacks:
        chosen = list(ATTACKS)
    store = _image_store(image_map, force_build, host_build_config)
    suite, selected = _load(tasks, names, dataset=dataset)
    if image_map is not None:
        console.print(
            f"[yellow]image map[/] {image_map}: {len(store.image_map)} entr{'y' if len(store.image_map) == 1 else 'ies'}",
            highlight=False,
        )
    if offline_tests:
        console.print(
            "[yellow]offline tests[/]: test scripts that download their tools are replaced by "
            "python3 -m pytest -rA on the task's test files",
            highlight=False,
        )
    t0 = time.monotonic()

    def on_build(task):
        console.print(f"[dim]image[/] {task.name}", highlight=False)

    def on_result(r: ValidationResult) -> None:
        if r.unsupported:
            console.print(f"[yellow]unsupported[/] {r.name}: {escape(r.unsupported)}", highlight=False)
            return
        mark = "[green]valid[/]" if r.valid else "[red]INVALID[/]"
        lines = [f"{mark} {r.name}: oracle={r.oracle_runs} nop={r.nop_runs} {r.seconds:.1f}s"]
        lines += [f"    [yellow]image map[/]: {escape(x)}" for x in r.image_substitutions]
        if r.offline_tests:
            lines.append(f"    [yellow]offline tests[/]: verified by {escape(r.test_runner or '')}")
        lines += [f"    [dim]note[/]: {escape(n)}" for n in r.notes]
        if r.attacks:
            lines.append(_attack_line(r))
        if r.error:
            lines.append(f"    {escape(r.error)}")
        console.print("\n".join(lines), highlight=False)

    if chosen:
        console.print(
            f"[yellow]attacks[/]: {len(chosen)} built-in attack(s) x {runs} run(s) per task, each must score 0",
            highlight=False,
        )
    results = validate_suite(
        selected,
        backend=backend,
        jobs=jobs,
        runs=runs,
        store=store,
        on_result=on_result,
        on_build=on_build,
        offline_tests=offline_tests,
        attacks=chosen,
    )
    n_unsupported = sum(bool(r.unsupported) for r in results)
    results_run = results
    results = [r for r in results if not r.unsupported]
    n_valid = sum(r.valid for r in results)
    by_domain: dict[str, int] = {}
    for r in results:
        if r.valid:
            by_domain[r.domain or "(no domain)"] = by_domain.get(r.domain or "(no domain)", 0) + 1
    console.print(
        f"\n{n_valid}/{len(results)} valid in {time.monotonic() - t0:.0f}s; valid per domain: "
        + ", ".join(f"{k}={v}" for k, v in sorted(by_domain.items())),
        highlight=False,
    )
    if n_unsupported:
        console.print(
            f"{n_unsupported} task(s) not run: unsupported on the {backend} backend (listed above)",
            highlight=False,
        )
    if suite.errors:
        console.print(f"{len(suite.errors)} folder(s) could not be loaded (listed above)", highlight=False)
    if as_json:
        rows = [r.to_dict() for r in results_run]
        # Folders that failed to load are invalid too: listed with their load error.
        rows += [
            ValidationResult(e.folder.name, None, None, False, 0.0, error=str(e)).to_dict()
            | {"load_error": True}
            for e in suite.errors
        ]
        print(json.dumps(rows))
    if n_valid < len(results) or suite.errors:
        raise typer.Exit(1)


def _attack_line(r) -> str:
    """One line summing up a task's attack results: how many were resisted, and those that were not."""
    by: dict[str, list[str]] = {}
    for a in r.attacks:
        label = a.name
        if a.verdict == "hacked":
            label += f" ({', '.join(f'{x:g}' for x in a.rewards)})"
        by.setdefault(a.verdict, []).append(label)
    parts = [f"{len(by.get('resisted', []))}/{len(r.attacks)} resisted"]
    if by.get("hacked"):
        parts.append("[red]HACKED[/]: " + escape(", ".join(by["hacked"])))
    if by.get("error"):
        parts.append("[red]not judged[/]: " + escape(", ".join(by["error"])))
    if by.get("not_applicable"):
        parts.append("not applicable: " + escape(", ".join(by["not_applicable"])))
    return "    [yellow]attacks[/]: " + "; ".join(parts)


@app.command()
def play(
    task: Annotated[str, typer.Argument(help="Task name (bundled) or path to a task folder.")],
    tasks: TasksOpt = None,
    dataset: DatasetOpt = None,
    command: Annotated[
        list[str] | None,
        typer.Option(
            "--command",
            "-c",
            help="Run these commands non-interactively, then submit (with --keys: key specs, one per -c).",
        ),
    ] = None,
    oracle: Annotated[
        bool, typer.Option(help="Type the reference solution into the shell as one command, then submit.")
    ] = False,
    keys: Annotated[
        bool,
        typer.Option(
            "--keys",
            help="Keys mode: each line is keystrokes for a live terminal (text and tmux key names, e.g. "
            "'vim a.txt Enter', 'i hello Escape :wq Enter', 'C-c'); the rendered screen comes back.",
        ),
    ] = False,
    wait: Annotated[
        float, typer.Option(help="Keys mode: seconds to watch the terminal after each line of keys.")
    ] = 1.0,
    timeout: Annotated[float, typer.Option(help="Per-command timeout in seconds.")] = 180.0,
    backend: Annotated[str, typer.Option(help="Sandbox backend: bwrap or docker.")] = "bwrap",
    image_map: ImageMapOpt = None,
    force_build: ForceBuildOpt = False,
    host_build_config: HostBuildConfigOpt = True,
    offline_tests: OfflineTestsOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Work on a task in its sandbox: type commands, see their output; `submit` runs the verifier.

    With --keys the sandbox's terminal is driven by keystrokes, as Terminus-2 drives tmux: a line such as
    `vim a.txt Enter` types `vim a.txt` then presses Enter, `C-c` presses Ctrl-C; words that are tmux key
    names are keys (a leading backslash types one as text: `\\Enter`), the rest is typed as written. An
    empty line waits and shows the screen again."""
    import ltenv
    from ltenv.env import TerminalEnv

    _setup_logging(verbose)
    from ltenv.tasks.discovery import is_task_dir

    path = Path(task)
    if not is_task_dir(path):
        _, selected = _load(tasks, [task], dataset=dataset)
        path = selected[0].path
    env = TerminalEnv(
        path,
        backend=backend,
        command_timeout=timeout,
        max_steps=10_000,
        image_store=_image_store(image_map, force_build, host_build_config),
        offline_tests=offline_tests,
        **({"action_mode": "keys", "keys_wait": wait} if keys else {}),
    )
    if keys:
        try:
            _play_keys(env, command, oracle, wait)
        finally:
            env.close()
        return
    obs, info = env.reset()
    out.print(
        f"[bold]{info['task']}[/] ({info['domain']}, {info['difficulty']}) reset in {info['reset_seconds'] * 1000:.0f} ms"
    )
    out.print(obs, markup=False, highlight=False, end="")
    scripted: list[str] | None = None
    solution = env.task.solution_path
    keystroke_run = None
    if oracle and solution is not None and env.task.keystroke_oracle:
        # A keystroke oracle (solution/keys.json, TB solution.yaml): typed into its own terminal in the sandbox.
        from ltenv.verify import run_oracle

        assert env.sandbox is not None
        keystroke_run = run_oracle(env.sandbox, env.task)  # its shell stays up until the episode ends
        out.print(f"[dim]typed {solution.name} into a terminal: exit {keystroke_run.exit_code}[/]")
        out.print(keystroke_run.text, markup=False, highlight=False, end="")
        scripted = []
    elif oracle:
        if solution is None:
            console.print(f"[red]{env.task.name} has no reference solution[/]")
            env.close()
            raise typer.Exit(2)
        # Through a child bash, as an agent would type it: an `exit` in the script must not end the session.
        script = solution.read_text()
        scripted = [f"bash <<'__LTENV_ORACLE__'\n{script.rstrip()}\n__LTENV_ORACLE__"]
    elif command:
        scripted = list(command)
    if scripted is not None:
        scripted.append(ltenv.SUBMIT)
    elif sys.stdin.isatty():
        out.print("\n[dim](type shell commands; `submit` runs the verifier, Ctrl-D quits without it)[/]")
    try:
        while True:
            if scripted is not None:
                action = scripted.pop(0)
                shown = "submit" if action == ltenv.SUBMIT else action
                out.print(shown.rstrip("\n"), markup=False, highlight=False)
            else:
                try:
                    action = input()
                except EOFError:
                    out.print("\n[dim]quit without submitting[/]")
                    return
                if action.strip() == "submit":
                    action = ltenv.SUBMIT
            obs, _reward, terminated, truncated, info = env.step(action)
            out.print(obs, markup=False, highlight=False, end="")
            if terminated or truncated:
                _print_verdict(info)
                if not info["passed"]:
                    raise typer.Exit(1)
                return
            status = info["exit_code"] if not info["timed_out"] else "timeout"
            out.print(f"[dim][exit {status}, {info['duration_s'] * 1000:.1f} ms][/]")
            out.print(
                f"root@sandbox:{env.sandbox.spec.workdir}# " if env.sandbox else "$ ", end="", markup=False
            )
    finally:
        if keystroke_run is not None:
            keystroke_run.close()
        env.close()


def key_spec_actions(line: str, wait: float) -> list[str]:
    """Keys-mode actions (:func:`ltenv.terminal.keys.parse_keys_action` JSON) for one line of key specs:
    whitespace-separated words that are tmux key names (``Enter``, ``Escape``, ``C-c``...) are those keys,
    runs of other words are typed as written (their spacing kept); ``\\Enter`` types the word ``Enter``.
    The last action watches the terminal for ``wait`` seconds, the others send at once.

    Example:
        >>> [json.loads(a)["keys"] for a in key_spec_actions("vim a.txt Enter", 1)]
        [['vim a.txt', 'Enter']]
    """
    import re

    from ltenv.agents.scaffolds import is_key_name

    groups: list[tuple[list[str], bool]] = []  # (keys, literal)
    text, text_end = "", 0

    def put(item: str, literal: bool) -> None:
        if groups and groups[-1][1] == literal:
            groups[-1][0].append(item)
        else:
            groups.append(([item], literal))

    def flush() -> None:
        nonlocal text
        if text:
            put(text, is_key_name(text))  # text that reads as a key name goes literally
            text = ""

    for m in re.finditer(r"\S+", line):
        word = m.group()
        if is_key_name(word):
            flush()
            put(word, False)
            continue
        if word.startswith("\\") and is_key_name(word[1:]):
            word = word[1:]
        text = text + line[text_end : m.start()] + word if text else word
        text_end = m.end()
    flush()
    if not groups:
        return [json.dumps({"keys": [], "wait": wait})]
    return [
        json.dumps({"keys": ks, "wait": wait if i == len(groups) - 1 else 0.0, "literal": lit})
        for i, (ks, lit) in enumerate(groups)
    ]


def _play_keys(env, command: list[str] | None, oracle: bool, wait: float) -> None:
    """`ltenv play --keys`: key specs from -c or stdin into a keys-mode environment; screens come back."""
    import ltenv

    obs, info = env.reset()
    out.print(
        f"[bold]{info['task']}[/] ({info['domain']}, {info['difficulty']}) reset in {info['reset_seconds'] * 1000:.0f} ms"
    )
    out.print(obs["output"].rstrip("\n"), markup=False, highlight=False)
    scripted: list[str] | None = list(command) if command else None
    if oracle:
        solution = env.task.solution_path
        if solution is None:
            console.print(f"[red]{env.task.name} has no reference solution[/]")
            raise typer.Exit(2)

        def until_prompt(limit: float) -> None:
            deadline = time.monotonic() + min(limit, env.command_timeout)
            while time.monotonic() < deadline and not env.render().rstrip().endswith(("#", "$")):
                env.step(json.dumps({"keys": [], "wait": 0.5}))

        if env.task.keystroke_oracle:
            # Each entry as written (a key name is that key), Enter when it asks for it; a blocking entry
            # is watched until the prompt is back, as Terminal-Bench waits on it.
            spec = env.task.oracle_spec()
            for entry in spec.keystrokes:
                keys = [entry.command, *(["Enter"] if entry.append_enter else [])]
                blocks = entry.block and (entry.append_enter or entry.command.endswith(("\n", "\r")))
                env.step(
                    json.dumps({"keys": keys, "wait": min(wait, 0.5) if blocks else entry.min_timeout_sec})
                )
                if blocks:
                    until_prompt(entry.max_timeout_sec)
        else:
            # Through a child bash, as in command mode; then watch until the shell's prompt is back.
            from ltenv.agents.policies import OraclePolicy

            script = OraclePolicy.typed_script(solution.read_text()) + "\n"
            env.step(json.dumps({"keys": [script], "literal": True, "wait": wait}))
            until_prompt(env.command_timeout)
        out.print(env.render(), markup=False, highlight=False)
        scripted = []
    if scripted is None and sys.stdin.isatty():
        out.print(
            "[dim](type keys: text and key names such as Enter, Escape, C-c; `submit` runs the verifier)[/]"
        )
    while True:
        if scripted is not None:
            line = scripted.pop(0) if scripted else "submit"
            if not line.startswith("{"):
                out.print(f"> {line}", markup=False, highlight=False)
        else:
            try:
                line = input("> " if sys.stdin.isatty() else "")
            except EOFError:
                out.print("\n[dim]quit without submitting[/]")
                return
        if line.strip() == "submit":
            actions = [ltenv.SUBMIT]
        elif line.startswith("{"):
            actions = [line]
        else:
            actions = key_spec_actions(line, wait)
        for action in actions:
            obs, _reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                out.print(
                    obs["output"] if isinstance(obs, dict) else obs, markup=False, highlight=False, end=""
                )
                _print_verdict(info)
                if not info["passed"]:
                    raise typer.Exit(1)
                return
        out.print(f"[dim]{'─' * 20} screen {'─' * 20}[/]")
        out.print(obs["screen"], markup=False, highlight=False)


def _print_verdict(info: dict) -> None:
    color = "green" if info["passed"] else "red"
    out.print(f"\n[{color}]reward={info['reward']:g}[/] ({info['termination']}, {info['steps']} steps)")
    for t in info.get("tests", []):
        mark = {"passed": "[green]PASS[/]", "skipped": "[yellow]SKIP[/]"}.get(t["outcome"], "[red]FAIL[/]")
        out.print(f"  {mark} {t['name']}", highlight=False)
    if info.get("verifier_error"):
        out.print("  [yellow]verifier:[/]", escape(info["verifier_error"]))


@app.command()
def gc(
    as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON on stdout.")] = False,
) -> None:
    """Remove sandboxes (mounts, cgroups, directories, containers) left behind by killed processes."""
    from ltenv.errors import ImageError, SandboxError
    from ltenv.sandbox.bwrap import gc_stale

    report: dict[str, int | str] = {"sandboxes": gc_stale(verbose=True)}
    try:
        from ltenv.sandbox.docker import gc_containers

        report["containers"] = gc_containers(verbose=True)
    except (ImageError, SandboxError) as e:  # no engine: nothing of ours can be running in one
        report["containers"] = 0
        report["docker"] = str(e).splitlines()[0]
    if as_json:
        print(json.dumps(report))
        return
    out.print(
        f"removed {report['sandboxes']} stale sandbox(es) and {report['containers']} stale container(s)"
    )
    if "docker" in report:
        console.print(f"[dim]docker: {escape(str(report['docker']))}[/]")


def _policy_kwargs(
    base_url: str | None,
    api_key_env: str | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    adapter: str | None,
    policy_args: list[str] | None,
) -> dict:
    kwargs: dict = {}
    if base_url is not None:
        kwargs["base_url"] = base_url
    if api_key_env is not None:
        if api_key_env not in os.environ:
            console.print(f"[red]error:[/] --api-key-env {escape(api_key_env)}: that variable is not set")
            raise typer.Exit(2)
        kwargs["api_key"] = os.environ[api_key_env]
    if temperature is not None:
        kwargs["temperature"] = temperature
    if top_p is not None:
        kwargs["top_p"] = top_p
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if adapter is not None:
        kwargs["adapter"] = adapter
    for item in policy_args or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            console.print(f"[red]error:[/] --policy-arg {escape(item)}: expected KEY=VALUE")
            raise typer.Exit(2)
        try:
            kwargs[key.strip().replace("-", "_")] = json.loads(value)
        except ValueError:
            kwargs[key.strip().replace("-", "_")] = value
    return kwargs


def _rollout_scaffold(scaffold: str | None, policy: str, selected: list) -> str:
    """The scaffold a rollout runs: as asked, else ``terminus``; for the oracle, ``terminus-2`` when a selected
    task's reference solution is keystrokes (only keys mode can type it), and an error when a command-mode
    scaffold was asked for such tasks."""
    from ltenv.agents.scaffolds import get_scaffold

    if policy != "oracle":
        return scaffold or "terminus"
    keyed = [t.name for t in selected if t.keystroke_oracle]
    if not keyed:
        return scaffold or "terminus"
    if scaffold is None:
        console.print(
            f"[dim]{len(keyed)} task(s) have a keystroke oracle ({escape(', '.join(keyed[:3]))}"
            f"{', ...' if len(keyed) > 3 else ''}): the oracle runs with the terminus-2 scaffold[/]",
            highlight=False,
        )
        return "terminus-2"
    try:
        keys_mode = get_scaffold(scaffold).action_mode == "keys"
    except (KeyError, ValueError):
        return scaffold  # an unknown name is reported where scaffolds are resolved
    if not keys_mode:
        console.print(
            f"[red]error:[/] --scaffold {escape(scaffold)} runs whole commands, but the reference solution of "
            f"{escape(', '.join(keyed))} is keystrokes (solution/keys.json or solution.yaml): use "
            "--scaffold terminus-2, or leave --scaffold out",
            highlight=False,
        )
        raise typer.Exit(2)
    return scaffold


@app.command()
def rollout(
    names: Annotated[list[str] | None, typer.Argument(help="Task names (default: all).")] = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", "-p", help="Required: openai:MODEL, hf:PATH, oracle, nop or replay:FILE."),
    ] = None,
    tasks: TasksOpt = None,
    dataset: DatasetOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (created; a rerun resumes).")
    ] = Path("runs/rollout"),
    k: Annotated[int, typer.Option("-k", "--attempts", help="Attempts per task.")] = 1,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Episodes run in parallel.")] = 4,
    scaffold: Annotated[
        str | None,
        typer.Option(
            help="Scaffold: terminus (the default: Terminus-2 JSON, each command run to completion), terminus-2 (Terminus-2 in keys mode: raw keystrokes into a live terminal, then a wait), bash, plain (the reply is the command, for small models) or bare (plain without a system prompt, for models trained on it). With --policy oracle the default is terminus-2 when a selected task's reference solution is keystrokes.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="Sandbox backend: bwrap or docker.")] = "bwrap",
    max_turns: Annotated[int, typer.Option(help="Model turns per episode.")] = 50,
    max_parse_errors: Annotated[
        int, typer.Option(help="Consecutive malformed replies that end an episode.")
    ] = 3,
    seed: Annotated[
        int | None, typer.Option(help="Run seed: each episode's seed derives from (seed, task, attempt).")
    ] = None,
    cast: Annotated[
        bool, typer.Option(help="Record asciinema casts in OUT/casts/<task>.<attempt>.cast.")
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run episodes as Ray tasks: 'local' starts a cluster here (or joins $RAY_ADDRESS), 'auto' "
            "joins the one running on this machine, or a cluster address.",
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="openai: server URL (e.g. http://127.0.0.1:8000/v1).")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="openai: environment variable holding the API key.")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="openai: completion tokens per reply.")] = None,
    adapter: Annotated[str | None, typer.Option(help="hf: PEFT adapter folder.")] = None,
    policy_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--policy-arg", help="Other policy option KEY=VALUE (VALUE parsed as JSON if it can be)."
        ),
    ] = None,
    command_timeout: Annotated[float | None, typer.Option(help="Per-command timeout in seconds.")] = None,
    timeout_multiplier: Annotated[
        float,
        typer.Option(
            "--timeout-multiplier",
            "--global-timeout-multiplier",
            help="Scale every task's agent and test timeouts (Harbor --timeout-multiplier, Terminal-Bench "
            "--global-timeout-multiplier).",
        ),
    ] = 1.0,
    agent_timeout_multiplier: Annotated[
        float, typer.Option(help="Scale every task's agent timeout (times --timeout-multiplier).")
    ] = 1.0,
    verifier_timeout_multiplier: Annotated[
        float, typer.Option(help="Scale every task's test timeout (times --timeout-multiplier).")
    ] = 1.0,
    global_agent_timeout_sec: Annotated[
        float | None,
        typer.Option(help="Replace every task's agent timeout (the episode's wall-clock budget), seconds."),
    ] = None,
    global_test_timeout_sec: Annotated[
        float | None, typer.Option(help="Replace every task's test (verifier) timeout, seconds.")
    ] = None,
    image_map: ImageMapOpt = None,
    force_build: ForceBuildOpt = False,
    host_build_config: HostBuildConfigOpt = True,
    offline_tests: OfflineTestsOpt = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="If OUT holds a run with another configuration, move it to OUT/replaced-<time>/ and start afresh.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout at the end.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run K attempts of each task with a policy, JOBS episodes at a time, into OUT/trajectories.jsonl.

    A rerun with the same OUT resumes: (task, attempt) pairs already recorded are skipped. Episodes
    that fail (sandbox, image build, policy errors) are recorded with their error, never dropped.
    """
    from ltenv.agents import make_policy
    from ltenv.rollouts import rollout as run_rollout

    _setup_logging(verbose)
    if not policy:
        console.print(
            "[red]error:[/] --policy is required: openai:MODEL, hf:PATH, oracle, nop or replay:FILE"
        )
        raise typer.Exit(2)
    if k < 1 or jobs < 1:
        console.print("[red]error:[/] -k and --jobs must be at least 1")
        raise typer.Exit(2)
    _, selected = _load(tasks, names, dataset=dataset)
    scaffold = _rollout_scaffold(scaffold, policy, selected)
    kwargs = _policy_kwargs(base_url, api_key_env, temperature, top_p, max_tokens, adapter, policy_arg)
    try:
        pol = make_policy(policy, **kwargs)
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]error:[/] --policy {escape(policy)}: {escape(str(e))}")
        raise typer.Exit(2) from None
    env_kwargs: dict = {}
    if command_timeout is not None:
        env_kwargs["command_timeout"] = command_timeout
    if offline_tests:
        env_kwargs["offline_tests"] = True
    from pydantic import ValidationError

    from ltenv.tasks.model import Timeouts

    try:
        timeouts = Timeouts(
            multiplier=timeout_multiplier,
            agent_multiplier=agent_timeout_multiplier,
            verifier_multiplier=verifier_timeout_multiplier,
            agent_sec=global_agent_timeout_sec,
            verifier_sec=global_test_timeout_sec,
        )
    except ValidationError as e:
        bad = ", ".join(str(err["loc"][0]) for err in e.errors())
        console.print(f"[red]error:[/] timeouts and multipliers must be positive ({escape(bad)})")
        raise typer.Exit(2) from None
    if timeout_overrides := timeouts.model_dump(exclude_defaults=True):
        env_kwargs["timeouts"] = timeout_overrides
    console.print(
        f"rollout [bold]{escape(policy)}[/] ({scaffold}, {backend}): {len(selected)} task(s) x {k} "
        f"attempt(s), {jobs} at a time{' on Ray' if ray else ''} -> {escape(str(out_dir))}",
        highlight=False,
        soft_wrap=True,
    )
    res = run_rollout(
        pol,
        selected,
        out=out_dir,
        k=k,
        jobs=jobs,
        scaffold=scaffold,
        backend=backend,
        max_turns=max_turns,
        max_parse_errors=max_parse_errors,
        seed=seed,
        cast=cast,
        executor=("ray" if ray == "local" else ray) if ray else "local",
        image_store=_image_store(image_map, force_build, host_build_config),
        env_kwargs=env_kwargs or None,
        progress=True,
        overwrite=overwrite,
    )
    n = len(res.trajectories)
    console.print(
        f"{res.ran} episode(s) run, {res.skipped} resumed; {res.passed}/{n} passed ({res.pass_rate:.1%}), "
        f"{res.errors} error(s) in {res.seconds:.0f}s -> {escape(str(res.trajectories_file))}",
        highlight=False,
        soft_wrap=True,
    )
    if as_json:
        print(
            json.dumps(
                {
                    "out": str(res.out),
                    "episodes": n,
                    "ran": res.ran,
                    "skipped": res.skipped,
                    "passed": res.passed,
                    "errors": res.errors,
                    "pass_rate": res.pass_rate,
                    "seconds": round(res.seconds, 2),
                }
            )
        )


def _for_each_image(
    names,
    tasks,
    verbose: bool,
    action,
    image_map: Path | None = None,
    dataset: str | None = None,
    *,
    force_build: bool = False,
    host_build_config: bool = True,
) -> None:
    """Run ``action(store, task) -> summary`` over the selected tasks; report failures and exit 1 on any."""
    from ltenv.errors import ImageError

    _setup_logging(verbose)
    _, selected = _load(tasks, names, dataset=dataset)
    store = _image_store(
        image_map,
        force_build,
        host_build_config,
        log_fn=lambda m: console.print(f"[dim]{m}[/]", highlight=False),
    )
    failed = 0
    for task in selected:
        t0 = time.monotonic()
        try:
            summary = action(store, task)
            out.print(f"{task.name}: {summary} ({time.monotonic() - t0:.1f}s)", highlight=False)
        except ImageError as e:
            failed += 1
            console.print(f"[red]{task.name}:[/]", escape(str(e)), highlight=False)
    out.print(f"layer cache: {store.root}", highlight=False)
    if failed:
        raise typer.Exit(1)


@images_app.command("build")
def images_build(
    names: Annotated[list[str] | None, typer.Argument(help="Task names (default: all).")] = None,
    tasks: TasksOpt = None,
    dataset: DatasetOpt = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the content hash is unchanged.")] = False,
    image_map: ImageMapOpt = None,
    force_build: ForceBuildOpt = False,
    host_build_config: HostBuildConfigOpt = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Build task images with the Docker engine (bases first; unchanged tasks are skipped)."""
    _for_each_image(
        names,
        tasks,
        verbose,
        lambda store, task: store.build(task, force=force),
        image_map,
        dataset,
        force_build=force_build,
        host_build_config=host_build_config,
    )


@images_app.command("export")
def images_export(
    names: Annotated[list[str] | None, typer.Argument(help="Task names (default: all).")] = None,
    tasks: TasksOpt = None,
    dataset: DatasetOpt = None,
    image_map: ImageMapOpt = None,
    force_build: ForceBuildOpt = False,
    host_build_config: HostBuildConfigOpt = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Build if needed, then unpack each task image's layers into the shared cache used by bwrap."""
    _for_each_image(
        names,
        tasks,
        verbose,
        lambda store, task: f"{len(store.prepare(task).layers)} layers",
        image_map,
        dataset,
        force_build=force_build,
        host_build_config=host_build_config,
    )


@images_app.command("bootstrap")
def images_bootstrap(
    suite: Annotated[str, typer.Option(help="Debian suite.")] = "bookworm",
    tag: Annotated[str | None, typer.Option(help="Image tag (default: debian:<suite>).")] = None,
    mirror: Annotated[
        str | None, typer.Option(help="Debian mirror URL (default: $LTENV_DEBIAN_MIRROR or deb.debian.org).")
    ] = None,
) -> None:
    """Create a Debian base image with no registry: debootstrap from a mirror, then `docker import`."""
    from ltenv.sandbox.images import ImageStore

    store = ImageStore(log_fn=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    image_id = store.bootstrap(suite, tag=tag, mirror=mirror)
    out.print(f"{tag or 'debian:' + suite}: {image_id}")


# ---------------------------------------------------------------------------------------------- datasets

export_app = typer.Typer(
    help="Export trajectories as datasets (JSONL or Parquet): SFT examples, preference pairs."
)
app.add_typer(export_app, name="export")
import_app = typer.Typer(help="Import datasets from other formats into the chat-messages format.")
app.add_typer(import_app, name="import")

SourcesArg = Annotated[
    list[Path], typer.Argument(help="Run folders (with trajectories.jsonl) or trajectory JSONL files.")
]
DatasetOutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Output file: .jsonl or .parquet (by suffix).")
]
DomainOpt = Annotated[
    list[str] | None, typer.Option("--domain", help="Only episodes of this domain (repeatable).")
]
MaxTurnsOpt = Annotated[
    int | None, typer.Option("--max-turns", help="Only episodes with at most this many assistant turns.")
]
DedupeOpt = Annotated[bool, typer.Option("--dedupe/--no-dedupe", help="Drop repeated conversations.")]


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _check_dataset_out(path: Path) -> None:
    if path.suffix.lower() not in (".jsonl", ".json", ".parquet"):
        console.print(f"[red]error:[/] --out {escape(str(path))}: use a .jsonl or .parquet file")
        raise typer.Exit(2)


TokenizerOpt = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        help="A local tokenizer (model folder): re-tokenize the conversations that recorded token ids "
        "and report how often the ids differ (the re-tokenization drift).",
    ),
]


def _report_tokens(conversations: list, tokenizer_path: Path | None) -> None:
    """Print how many conversations carry recorded token ids and, given a tokenizer, the drift rate."""
    n = sum(any(m.get("tokens") for m in c) for c in conversations)
    if not n:
        return
    if tokenizer_path is None:
        out.print(
            f"{n} conversation(s) carry recorded token ids (--tokenizer MODEL_DIR reports the re-tokenization drift)",
            highlight=False,
        )
        return
    from transformers import AutoTokenizer

    from ltenv.train.tokens import drift_report

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)
    except (OSError, ValueError) as e:
        console.print(f"[red]error:[/] --tokenizer {escape(str(tokenizer_path))}: {escape(str(e))}")
        raise typer.Exit(2) from None
    out.print(drift_report(tokenizer, conversations).summary(), highlight=False)


def _load_sources(sources: list[Path]) -> list:
    from ltenv.data import load_trajectories

    try:
        return load_trajectories(sources)
    except FileNotFoundError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None


@export_app.command("sft")
def export_sft_cmd(
    sources: SourcesArg,
    out_file: DatasetOutOpt,
    min_reward: Annotated[float, typer.Option(help="Only episodes with at least this reward.")] = 1.0,
    domain: DomainOpt = None,
    max_turns: MaxTurnsOpt = None,
    dedupe: DedupeOpt = True,
    tokenizer: TokenizerOpt = None,
) -> None:
    """Successful episodes as SFT examples: {"messages": [...]} (TRL conversational) plus task, domain,
    difficulty, attempt, reward, run, policy, model, scaffold and turns columns. Assistant messages keep
    their reasoning_content, tool_calls and recorded token ids."""
    from ltenv.data import ExportStats, export_sft

    _quiet_datasets()
    _check_dataset_out(out_file)
    trajs = _load_sources(sources)
    stats = ExportStats()
    ds = export_sft(
        trajs,
        out_file,
        min_reward=min_reward,
        domains=domain,
        max_turns=max_turns,
        dedupe=dedupe,
        stats=stats,
    )
    n_tasks = len(set(ds["task"]))
    out.print(
        f"{ds.num_rows} example(s) ({n_tasks} task(s)) from {len(trajs)} episode(s) -> {out_file}",
        highlight=False,
    )
    if stats.summary():
        out.print(stats.summary(), highlight=False)
    _report_tokens(list(ds["messages"]), tokenizer)


@export_app.command("pairs")
def export_pairs_cmd(
    sources: SourcesArg,
    out_file: DatasetOutOpt,
    min_margin: Annotated[
        float, typer.Option(help="Minimum reward difference between chosen and rejected.")
    ] = 0.0,
    max_pairs_per_task: Annotated[
        int | None, typer.Option(help="Keep at most this many pairs per task (a seeded random subset).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subset choice.")] = 0,
    domain: DomainOpt = None,
    max_turns: MaxTurnsOpt = None,
    dedupe: DedupeOpt = True,
    tokenizer: TokenizerOpt = None,
    branch: Annotated[
        bool,
        typer.Option(
            "--branch",
            help="Only branching pairs: episodes of the same task, seed and prompt that agree on their first "
            "turns and part later (the shared turns go into the prompt; branch_turn counts them).",
        ),
    ] = False,
) -> None:
    """Multi-turn preference pairs {"prompt", "chosen", "rejected"}: episodes of the same task and prompt,
    the higher reward chosen, ties dropped. The prompt holds what both episodes share (with the assistant
    turns they agree on, counted in branch_turn). Assistant messages keep their reasoning_content,
    tool_calls and recorded token ids."""
    from ltenv.data import ExportStats, export_pairs

    _quiet_datasets()
    _check_dataset_out(out_file)
    trajs = _load_sources(sources)
    stats = ExportStats()
    ds = export_pairs(
        trajs,
        out_file,
        min_margin=min_margin,
        max_pairs_per_task=max_pairs_per_task,
        seed=seed,
        domains=domain,
        max_turns=max_turns,
        dedupe=dedupe,
        stats=stats,
        branch=branch,
    )
    n_tasks = len(set(ds["task"]))
    out.print(
        f"{ds.num_rows} pair(s) ({n_tasks} task(s)) from {len(trajs)} episode(s) -> {out_file}",
        highlight=False,
    )
    n_branch = sum(k > 0 for k in ds["branch_turn"])
    if n_branch:
        out.print(f"{n_branch} pair(s) branch at a later turn (shared turns in the prompt)", highlight=False)
    if stats.summary():
        out.print(stats.summary(), highlight=False)
    sides = [r["prompt"] + r[side] for r in ds for side in ("chosen", "rejected")]
    _report_tokens(sides, tokenizer)


@import_app.command("sharegpt")
def import_sharegpt_cmd(
    source: Annotated[Path, typer.Argument(help="ShareGPT file: .jsonl, .json (array) or .parquet.")],
    out_file: DatasetOutOpt,
    strict: Annotated[bool, typer.Option(help="Stop at the first malformed row (exit 1).")] = False,
) -> None:
    """Convert ShareGPT conversations ([{"from": human|gpt|system, "value"}], the LiteCoder-Terminal-SFT
    shape) to {"messages": [...]}. Malformed rows are skipped and listed (file, row, field)."""
    from ltenv.data import DataFormatError, import_sharegpt

    _quiet_datasets()
    _check_dataset_out(out_file)
    errors: list[DataFormatError] = []
    try:
        ds = import_sharegpt(source, out_file, strict=strict, errors=errors)
    except DataFormatError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    for e in errors[:20]:
        console.print(f"[yellow]skipped[/] {escape(str(e))}", highlight=False)
    if len(errors) > 20:
        console.print(f"[yellow]... and {len(errors) - 20} more skipped row(s)[/]")
    terminus = sum(ds["terminus"])
    out.print(
        f"{ds.num_rows} conversation(s) ({terminus} in Terminus-2 JSON), {len(errors)} skipped -> {out_file}",
        highlight=False,
    )


# ---------------------------------------------------------------------------------------------- evaluation


def _print_report(report, console_: Console) -> None:
    for table in report.tables():
        console_.print(table)
    for kk, names in sorted(report.short_tasks.items()):
        console_.print(
            f"[yellow]note[/]: {len(names)} task(s) have fewer than {kk} attempts; their pass@{kk} is 1 if any "
            "attempt passed, else 0",
            highlight=False,
        )


def _eval_cmd(from_dir: Path | None, as_json: bool, layout: str, **rollout_kwargs) -> None:
    """Roll out a policy (all `ltenv rollout` options), then evaluate the run: pass@1, pass@k, tables per
    domain and difficulty, failure modes; writes OUT/results.json, and beside it the run in Terminal-Bench's
    layout (OUT/terminal-bench/<run-id>/) and Harbor's (OUT/harbor/<job>/). `--from DIR` evaluates an
    existing run without rolling out."""
    from ltenv.evaluation import evaluate
    from ltenv.results_io import LAYOUTS, ResultsFormatError, write_layouts

    layouts = [x.strip() for x in layout.split(",") if x.strip() and x.strip() != "none"]
    if bad := [x for x in layouts if x not in LAYOUTS]:
        console.print(
            f"[red]error:[/] --layout {escape(', '.join(bad))}: use tb, harbor, both (tb,harbor) or none"
        )
        raise typer.Exit(2)
    k = rollout_kwargs["k"]
    if from_dir is None:
        if k is None:
            rollout_kwargs["k"] = k = 1
        rollout(**rollout_kwargs, as_json=False)
        run_dir = rollout_kwargs["out_dir"]
    else:
        run_dir = from_dir
        if not (run_dir / "trajectories.jsonl").is_file():
            console.print(f"[red]error:[/] --from {escape(str(run_dir))}: no trajectories.jsonl there")
            raise typer.Exit(2)
    report = evaluate(run_dir, k=k)
    _print_report(report, console if as_json else out)
    (console if as_json else out).print(f"results: {run_dir / 'results.json'}", highlight=False)
    try:
        written = write_layouts(run_dir, layouts)
    except ResultsFormatError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    for name, folder in written.items():
        label = {"tb": "Terminal-Bench run", "harbor": "Harbor job"}[name]
        (console if as_json else out).print(f"{label}: {folder}", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict()))


def _make_eval_command():
    """`ltenv eval` takes every `ltenv rollout` option (so the two never drift apart) plus --from and --json;
    -k is both the attempts per task and the k of pass@k."""
    import inspect
    from typing import get_type_hints

    hints = get_type_hints(rollout, include_extras=True)
    params = []
    for p in inspect.signature(rollout).parameters.values():
        if p.name == "as_json":
            continue
        ann = hints[p.name]
        default = p.default
        if p.name == "out_dir":
            default = Path("runs/eval")
        elif p.name == "k":
            ann = Annotated[
                int | None,
                typer.Option(
                    "-k",
                    "--attempts",
                    help="Attempts per task, and the k of pass@k (default: 1 when rolling out; with --from, "
                    "the fewest attempts any task has).",
                ),
            ]
            default = None
        params.append(p.replace(annotation=ann, default=default))
    params.append(
        inspect.Parameter(
            "from_dir",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                Path | None, typer.Option("--from", help="Evaluate this existing run folder; no rollout.")
            ],
            default=None,
        )
    )
    params.append(
        inspect.Parameter(
            "as_json",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                bool, typer.Option("--json", help="Print results.json on stdout (tables go to stderr).")
            ],
            default=False,
        )
    )
    params.append(
        inspect.Parameter(
            "layout",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                str,
                typer.Option(
                    "--layout",
                    help="Also write the run as Terminal-Bench (tb: OUT/terminal-bench/<run-id>/) and/or Harbor "
                    "(harbor: OUT/harbor/<job>/) result folders: tb,harbor (default), tb, harbor or none.",
                ),
            ],
            default="tb,harbor",
        )
    )
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]

    def eval_cmd(**kwargs) -> None:
        _eval_cmd(**kwargs)

    eval_cmd.__signature__ = inspect.Signature(params, return_annotation=None)
    eval_cmd.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    eval_cmd.__doc__ = _eval_cmd.__doc__
    eval_cmd.__name__ = "eval"
    return eval_cmd


app.command("eval")(_make_eval_command())


@app.command("leaderboard")
def leaderboard_cmd(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders (or trajectory JSONL files); Terminal-Bench run folders and Harbor job folders "
            "are imported."
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for leaderboard.md and index.html.")
    ] = Path("leaderboard"),
    k: Annotated[
        int | None,
        typer.Option("-k", help="The k of the pass@k column (default: the fewest attempts of any task)."),
    ] = None,
) -> None:
    """Rank runs by pass@1 (with pass@k, tasks, episodes, domains): a markdown table, printed and written to
    OUT/leaderboard.md, and OUT/index.html, a self-contained page with a task x run grid and a replay of
    every episode."""
    from ltenv.evaluation import leaderboard
    from ltenv.results_io import ResultsFormatError, detect_layout

    for r in runs:
        if not (r.is_file() or detect_layout(r)):
            console.print(
                f"[red]error:[/] {escape(str(r))}: not a run folder (no trajectories.jsonl), Terminal-Bench run "
                "folder or Harbor job folder"
            )
            raise typer.Exit(2)
    try:
        board = leaderboard(runs, k=k, out=out_dir)
    except ResultsFormatError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    print(board.markdown(), end="")
    console.print(
        f"{len(board.entries)} run(s) -> {out_dir / 'leaderboard.md'}, {out_dir / 'index.html'}",
        highlight=False,
    )


@import_app.command("run")
def import_run_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="A Terminal-Bench run folder (runs/<run-id>) or a Harbor job folder (jobs/<job>)."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="The ltenv run folder to write (created).")],
) -> None:
    """Import another harness's run as an ltenv run folder (trajectories.jsonl, run.json, results.json), with
    per-task outcomes, for `ltenv leaderboard`, `ltenv compare` and `ltenv eval --from`."""
    from ltenv.results_io import ResultsFormatError, import_run, save_imported

    try:
        run = import_run(source, name=out_dir.name)
        save_imported(run, out_dir)
    except ResultsFormatError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    tasks = len({t.task for t in run.trajectories})
    passed = sum(t.passed and t.verified for t in run.trajectories)
    out.print(
        f"{run.layout} run {source}: {len(run.trajectories)} trial(s) of {tasks} task(s), {passed} passed -> "
        f"{out_dir}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("compare")
def compare_cmd(
    run_a: Annotated[
        Path, typer.Argument(help="Run A: an ltenv run, Terminal-Bench run or Harbor job folder.")
    ],
    run_b: Annotated[Path, typer.Argument(help="Run B, the same kinds.")],
    all_tasks: Annotated[
        bool, typer.Option("--all", help="List every task, not only those that differ.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Per-task differences between two runs (ours and Terminal-Bench's or Harbor's, or any two): passes
    over attempts in each, the pass@1 difference, tasks only one run has, and pass@1 over the common tasks."""
    from ltenv.results_io import ResultsFormatError, compare_runs

    try:
        cmp = compare_runs(run_a, run_b)
    except ResultsFormatError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(cmp.to_dict()))
    else:
        print(cmp.text(all_tasks=all_tasks), end="")


synth_app = typer.Typer(
    help="LiteCoder-Terminal-Gen: synthesize verified tasks from domain specifications with an LLM.",
    invoke_without_command=True,
)
app.add_typer(synth_app, name="synth")


@synth_app.callback()
def synth_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Required: the model name the server serves.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL)."
        ),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key (default: OPENAI_API_KEY).")
    ] = None,
    n: Annotated[
        int, typer.Option("--n", "-n", help="Candidates to generate (a rerun with a larger n extends).")
    ] = 20,
    domains_dir: Annotated[
        Path | None,
        typer.Option("--domains", help="Folder of domain specs (default: envs_registry/domains)."),
    ] = None,
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Only these domains (repeatable).")
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Run folder: tasks/, ledger.jsonl, cache/, work/ (a rerun resumes)."
        ),
    ] = Path("runs/synth"),
    seed: Annotated[
        int, typer.Option(help="Run seed: candidate i's domain, skill and subtopic derive from it.")
    ] = 0,
    workers: Annotated[int, typer.Option(help="Candidates in flight at once.")] = 4,
    max_concurrency: Annotated[int, typer.Option(help="LLM requests in flight at once.")] = 8,
    backend: Annotated[
        str, typer.Option(help="Sandbox backend for execution validation: bwrap or docker.")
    ] = "bwrap",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Sandbox episodes in parallel per validation.")
    ] = 4,
    repair_rounds: Annotated[int, typer.Option(help="Repair/refine rounds after a failed validation.")] = 2,
    ideas: Annotated[int, typer.Option(help="Ideas proposed per candidate (the judge picks one).")] = 3,
    judge_min_score: Annotated[int, typer.Option(help="Lowest judge score (1-10) an idea may have.")] = 6,
    free_fraction: Annotated[
        float,
        typer.Option(help="Share of candidates seeded by free continuation instead of skill x subtopic."),
    ] = 0.0,
    target: Annotated[
        Path | None,
        typer.Option(help="An eval report (results.json): sample more of the domains and skills it fails."),
    ] = None,
    registry: Annotated[
        list[Path] | None,
        typer.Option(
            help="Task roots new tasks must not duplicate (repeatable; default: the bundled registry)."
        ),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Completion tokens per reply.")] = 8192,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Generate N candidate tasks, validate each by execution (image builds, oracle passes, nop and attacks
    fail, twice, offline), repair failures with the logs, and write accepted tasks to OUT/tasks. Every
    candidate gets a ledger record with its verdict and reason (see `ltenv synth report OUT`)."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    if not model:
        console.print("[red]error:[/] --model is required (the model name the server serves)")
        raise typer.Exit(2)
    if n < 1:
        console.print("[red]error:[/] --n must be at least 1")
        raise typer.Exit(2)
    key_var = api_key_env or "OPENAI_API_KEY"
    if api_key_env and key_var not in os.environ:
        console.print(f"[red]error:[/] --api-key-env {escape(key_var)}: that variable is not set")
        raise typer.Exit(2)
    from ltenv.synth.ledger import REJECTION_REASONS, read_ledger, report
    from ltenv.synth.pipeline import SynthConfig, Synthesizer

    config = SynthConfig(
        out=out_dir,
        n=n,
        model=model,
        base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get(key_var) or "EMPTY",
        domains_dir=domains_dir,
        domains=domain or None,
        seed=seed,
        workers=workers,
        max_concurrency=max_concurrency,
        backend=backend,
        jobs=jobs,
        repair_rounds=repair_rounds,
        ideas=ideas,
        judge_min_score=judge_min_score,
        free_fraction=free_fraction,
        target=target,
        registry=list(registry or []),
        temperature=temperature,
        max_tokens=max_tokens,
    )
    synth = Synthesizer(config)
    if synth.targeting is not None:
        console.print(synth.targeting.table())
        for note in synth.targeting.notes:
            console.print(f"[dim]{escape(note)}[/]")

    def progress(rec) -> None:
        if rec.verdict == "accepted":
            console.print(
                f"[green]accepted[/] {rec.id} -> {escape(str(out_dir / (rec.path or '')))} "
                f"({rec.rounds} repair round(s), {rec.seconds:.1f}s)",
                highlight=False,
            )
        else:
            console.print(
                f"[red]rejected[/] {rec.id} at {rec.stage}: [bold]{rec.reason}[/] - "
                f"{escape((rec.detail or REJECTION_REASONS.get(rec.reason or '', ''))[:300])}",
                highlight=False,
            )

    t0 = time.monotonic()
    try:
        records = synth.run(progress=progress)
    finally:
        synth.llm.close()
    rep = report(read_ledger(out_dir))
    for table in rep.tables():
        out.print(table)
    usage = synth.llm.usage_by_stage()
    if usage:
        t = Table(title="Tokens per stage (this run)")
        for col in ("stage", "requests", "cache hits", "prompt", "completion"):
            t.add_column(col, justify="left" if col == "stage" else "right")
        for stage, c in usage.items():
            t.add_row(
                stage,
                str(c["requests"]),
                str(c["cached"]),
                str(c["prompt_tokens"]),
                str(c["completion_tokens"]),
            )
        out.print(t)
    accepted = sum(r.verdict == "accepted" for r in records)
    console.print(
        f"{len(records)} candidate(s) this run, {accepted} accepted, in {time.monotonic() - t0:.1f}s; "
        f"ledger: {out_dir / 'ledger.jsonl'}",
        highlight=False,
    )


@synth_app.command("report")
def synth_report_cmd(
    run: Annotated[Path, typer.Argument(help="A synthesis run folder or its ledger.jsonl.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Acceptance per stage (a funnel), rejections by reason, acceptance per domain, tokens and time."""
    from ltenv.synth.ledger import read_ledger, report

    rep = report(read_ledger(run))
    if as_json:
        print(json.dumps(rep.to_dict(), indent=1))
        return
    for table in rep.tables():
        out.print(table)


# ----------------------------------------------------------------------------------------- procgen
procgen_app = typer.Typer(
    help="Procedural task families: seeded generators of unlimited verifiable instances. Use them "
    "anywhere tasks are taken with --tasks procgen:<family>[,<family>...|all]:<seeds>."
)
app.add_typer(procgen_app, name="procgen")


def _procgen_error(e: Exception) -> typer.Exit:
    console.print("[red]error:[/]", escape(str(e)), highlight=False)
    return typer.Exit(2)


@procgen_app.command("list")
def procgen_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the registered families: name, domain, difficulty, multi-turn, description."""
    from ltenv.procgen.base import ProcgenError
    from ltenv.procgen.materialize import all_families, describe

    try:
        rows = [describe(f) for f in all_families().values()]
    except ProcgenError as e:
        raise _procgen_error(e) from None
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(
        "name", "domain", "difficulty", "multi-turn", "description", title=f"{len(rows)} family(ies)"
    )
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["domain"]),
            str(r["difficulty"]),
            "yes" if r["multi_turn"] else "no",
            escape(str(r["description"])),
        )
    out.print(table)


@procgen_app.command("show")
def procgen_show(
    family: Annotated[str, typer.Argument(help="Family name.")],
    seed: Annotated[int, typer.Option("--seed", "-s", help="Instance seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the instance as JSON.")] = False,
) -> None:
    """Show one instance: instruction, files, setup, commands (one per turn) and the check."""
    from ltenv.procgen.base import ProcgenError
    from ltenv.procgen.materialize import instance

    try:
        inst = instance(family, seed)
    except ProcgenError as e:
        raise _procgen_error(e) from None

    def text(v: str | bytes) -> str:
        return v if isinstance(v, str) else v.decode("utf-8", errors="replace")

    if as_json:
        print(
            json.dumps(
                {
                    "name": inst.name,
                    "family": inst.family,
                    "seed": inst.seed,
                    "domain": inst.domain,
                    "difficulty": inst.difficulty,
                    "instruction": inst.instruction,
                    "files": {k: text(v) for k, v in sorted(inst.files.items())},
                    "executable": sorted(inst.executable),
                    "setup": inst.setup,
                    "commands": list(inst.commands),
                    "check": inst.check,
                    "workdir": inst.workdir,
                    "tags": list(inst.tags),
                    "metadata": dict(inst.metadata),
                }
            )
        )
        return
    out.print(f"[bold]{inst.name}[/] ({inst.domain}, {inst.difficulty}), workdir {inst.workdir}")
    out.rule("instruction")
    out.print(inst.instruction.rstrip(), markup=False, highlight=False)
    for path, content in sorted(inst.files.items()):
        mode = " (executable)" if path in inst.executable else ""
        out.rule(f"file {path}{mode}")
        out.print(text(content).rstrip("\n"), markup=False, highlight=False)
    if inst.setup.strip():
        out.rule("setup")
        out.print(inst.setup.rstrip(), markup=False, highlight=False)
    out.rule(f"commands ({len(inst.commands)} turn(s))")
    for i, c in enumerate(inst.commands, 1):
        out.print(f"{i}. ", end="")
        out.print(c, markup=False, highlight=False)
    out.rule("check")
    out.print(inst.check.rstrip(), markup=False, highlight=False)


@procgen_app.command("export")
def procgen_export(
    family: Annotated[str, typer.Argument(help="Family name, several separated by ',', or 'all'.")],
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds: 0-999, 5, 0-49,100-149.")] = "0-99",
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write task folders into.")] = Path(
        "procgen-tasks"
    ),
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="portable: standard Harbor folders (environment/Dockerfile FROM the base image); "
            "fast: ltenv's shared-image folders (setup applied at sandbox start).",
        ),
    ] = "portable",
    force: Annotated[
        bool, typer.Option(help="Replace task folders that exist with different content.")
    ] = False,
) -> None:
    """Write instances as task folders OUT/<task name>/ (identical existing folders are left alone)."""
    from ltenv.procgen.base import ProcgenError
    from ltenv.procgen.materialize import export

    t0 = time.monotonic()
    try:
        written, unchanged = export(family, seeds, out_dir, format=fmt, force=force)
    except ProcgenError as e:
        raise _procgen_error(e) from None
    console.print(
        f"wrote {written} task folder(s) to {out_dir} ({fmt})"
        + (f", {unchanged} already up to date" if unchanged else "")
        + f" in {time.monotonic() - t0:.1f}s",
        highlight=False,
    )
    print(written + unchanged)


@app.command("demo")
def demo_cmd(
    quick: Annotated[
        bool, typer.Option("--quick", help="A few minutes (CI): fewer seeds and steps.")
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder (a rerun resumes).")] = Path(
        "runs/demo"
    ),
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete OUT and start over.")] = False,
    until: Annotated[str | None, typer.Option(help="Stop after this stage.")] = None,
    families: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated procedural families, or 'all' (default: five families of five domains; "
            "--quick: three)."
        ),
    ] = None,
    train_seeds: Annotated[int | None, typer.Option(help="Training seeds per family.")] = None,
    heldout_seeds: Annotated[int | None, typer.Option(help="Held-out seeds per family.")] = None,
    sft_steps: Annotated[int | None, typer.Option(help="SFT optimizer steps.")] = None,
    dmpo_steps: Annotated[int | None, typer.Option(help="DMPO optimizer steps.")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the model's initialization, the trainers' data order and sampling.")
    ] = 0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Oracle episodes in flight.")] = 4,
    backend: Annotated[str, typer.Option(help="Sandbox backend: bwrap or docker.")] = "bwrap",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """The whole loop on a laptop-class CPU, nothing downloaded: a tiny Qwen3 model learns procedural
    terminal tasks. Oracle rollouts on training seeds -> SFT export -> training/sft.py -> eval on held-out
    seeds -> SFT-model rollouts -> preference pairs -> training/dmpo.py -> eval; prints pass@1 per family
    for the untrained, SFT and DMPO models with the seconds of every stage, and writes OUT/leaderboard.
    Every stage is checkpointed: a rerun resumes from the first unfinished one."""
    _setup_logging(verbose)
    from ltenv.demo import STAGES, Demo, DemoConfig

    if until is not None and until not in STAGES:
        console.print(f"[red]error:[/] --until {escape(until)}: choose one of {', '.join(STAGES)}")
        raise typer.Exit(2)
    overrides: dict = {"out": out_dir, "jobs": jobs, "backend": backend, "seed": seed}
    for key, value in (
        ("train_seeds", train_seeds),
        ("heldout_seeds", heldout_seeds),
        ("sft_steps", sft_steps),
        ("dmpo_steps", dmpo_steps),
    ):
        if value is not None:
            if value < 1:
                console.print(f"[red]error:[/] --{key.replace('_', '-')} must be at least 1")
                raise typer.Exit(2)
            overrides[key] = value
    if families == "all":
        overrides["families"] = None
    elif families:
        overrides["families"] = [f.strip() for f in families.split(",") if f.strip()]
    config = DemoConfig.quick(**overrides) if quick else DemoConfig.full(**overrides)
    demo = Demo(config, say=lambda msg: console.print(escape(msg), highlight=False), fresh=fresh)
    state = demo.run(until=until)
    if "report" in state["stages"]:
        report = demo.report()
        print(demo.markdown(report), end="")
        console.print(
            f"demo done in {report['total_seconds']:.0f}s of stages; report: {out_dir / 'demo-report.md'}, "
            f"leaderboard: {out_dir / 'leaderboard' / 'index.html'}",
            highlight=False,
        )


def main() -> None:
    from ltenv.errors import LtenvError

    try:
        app()
    except LtenvError as e:
        console.print("[red]error:[/]", escape(str(e)), highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
