"""``ltenv datasets list | info | pull``: the dataset registry on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

datasets_app = typer.Typer(
    help="Published task suites by name (Terminal-Bench, LiteCoder-Terminal-RL, TermiGen...): list, "
    "inspect, pull into the local cache. Use one anywhere with --dataset NAME\\[@VERSION].",
    no_args_is_help=True,
)

console = Console(stderr=True)
out = Console()

RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry",
        help="A registry TOML file whose entries add to or replace the built-in ones "
        "(default: $LTENV_DATASETS).",
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Use only the local cache; never download (also LTENV_OFFLINE=1).",
        show_default=False,
    ),
]


def _fail(e: Exception) -> typer.Exit:
    console.print("[red]error:[/]", escape(str(e)), highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _registry(registry: Path | None):
    from ltenv.datasets import DatasetError, Registry

    try:
        return Registry.load(registry)
    except DatasetError as e:
        raise _fail(e) from None


@datasets_app.command("list")
def list_cmd(
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the datasets: name, version, format, task count where known, and whether it is cached."""
    from ltenv.datasets import check_cache

    reg = _registry(registry)
    rows = []
    for e in reg.entries():
        status = check_cache(e, verify=False)
        rows.append(
            {
                "name": e.name,
                "version": e.version,
                "format": e.format,
                "tasks": e.tasks,
                "source": e.source.location,
                "pinned": e.source.pinned is not None,
                "cached": status is not None and status.ok,
                "path": str(status.tasks) if status else None,
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(
        "dataset", "format", "tasks", "pinned", "cached", caption="sources: ltenv datasets info NAME"
    )
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(
            f"{r['name']}@{r['version']}",
            r["format"],
            "-" if r["tasks"] is None else str(r["tasks"]),
            "yes" if r["pinned"] else "[yellow]no[/]",
            "[green]yes[/]" if r["cached"] else "no",
        )
    out.print(table)


@datasets_app.command("info")
def info_cmd(
    spec: Annotated[
        str, typer.Argument(metavar="NAME[@VERSION]", help="Dataset (default: its newest version).")
    ],
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Show a dataset: source, pinned revision, format, what you must provide, cache path and the checksum
    of the cached copy (re-verified against its manifest)."""
    from ltenv.datasets import DatasetError, check_cache
    from ltenv.datasets.cache import entry_dir

    reg = _registry(registry)
    try:
        e = reg.get(spec)
    except DatasetError as err:
        raise _fail(err) from None
    status = check_cache(e)
    man = status.manifest if status else None
    info = {
        "dataset": e.ref,
        "format": e.format,
        "tasks": e.tasks,
        "description": e.description,
        "homepage": e.homepage,
        "source": e.source.model_dump(),
        "pinned": e.source.pinned,
        "pin_note": e.pin_note,
        "requires": e.requires,
        "registry": e.origin,
        "cache": str(entry_dir(e)),
        "cached": status is not None,
        "verified": bool(status and status.ok),
        "problem": status.problem if status else None,
        "revision": man.revision if man else None,
        "files": man.files if man else None,
        "sha256": man.sha256 if man else None,
        "pulled_at": man.pulled_at if man else None,
    }
    if as_json:
        print(json.dumps(info))
        return
    src = e.source
    lines = [
        f"[bold]{e.ref}[/]  ({e.format}, {e.tasks if e.tasks is not None else 'unknown number of'} tasks)",
        escape(e.description),
        f"homepage: {escape(e.homepage or '-')}",
        f"source:   {escape(src.location)}",
        f"pinned:   {escape(src.pinned or '[not pinned: resolved at pull time and recorded]')}"
        + (f" ({escape(src.ref)})" if getattr(src, "ref", None) else ""),
    ]
    if e.pin_note:
        lines.append(f"          {escape(e.pin_note)}")
    lines.append(f"registry: {escape(e.origin)}")
    lines.append("you provide:")
    lines += [f"  - {escape(r)}" for r in e.requires] or ["  - nothing beyond network access"]
    lines.append(f"cache:    {escape(info['cache'])}")
    if man is None:
        lines.append(f"cached:   no (ltenv datasets pull {e.ref})")
    else:
        mark = (
            "[green]verified[/]" if status and status.ok else f"[red]BAD[/]: {escape(status.problem or '')}"
        )
        lines.append(f"cached:   {man.files} files, revision {man.revision}, pulled {man.pulled_at}")
        lines.append(f"sha256:   {man.sha256} {mark}")
    out.print("\n".join(lines), highlight=False, soft_wrap=True)
    if status is not None and not status.ok:
        raise typer.Exit(1)


@datasets_app.command("pull")
def pull_cmd(
    specs: Annotated[
        list[str], typer.Argument(metavar="NAME[@VERSION]...", help="Datasets (default version: newest).")
    ],
    registry: RegistryOpt = None,
    offline: OfflineOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even over a verified copy.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of results.")] = False,
) -> None:
    """Download datasets into the local cache (atomically), verify them, print the path and checksum.

    A verified cached copy is reused. With --offline only the cache is checked.
    """
    from ltenv.datasets import DatasetError, pull

    reg = _registry(registry)
    results = []
    for spec in specs:
        try:
            e = reg.get(spec)
            if not as_json:
                console.print(f"[dim]pull[/] {e.ref} from {escape(e.source.location)}", highlight=False)
            res = pull(e, offline=offline or None, force=force)
        except DatasetError as err:
            raise _fail(err) from None
        results.append(
            {
                "dataset": e.ref,
                "path": str(res.tasks),
                "revision": res.manifest.revision,
                "files": res.manifest.files,
                "sha256": res.manifest.sha256,
                "cached": res.cached,
            }
        )
        if not as_json:
            how = "cached" if res.cached else "pulled"
            out.print(
                f"{e.ref}: {how}, {res.manifest.files} files at revision {res.manifest.revision}\n"
                f"  path:   {res.tasks}\n  sha256: {res.manifest.sha256}",
                highlight=False,
                soft_wrap=True,
            )
    if as_json:
        print(json.dumps(results))
