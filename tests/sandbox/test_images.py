"""Image building (content-hash tags), the shared layer cache, and base-image errors, on a real engine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ltenv.errors import ImageError
from ltenv.sandbox.images import ImageStore, dockerfile_bases
from ltenv.tasks import load_task

FIXTURES = Path(__file__).parent.parent / "fixtures" / "tasks"

pytestmark = pytest.mark.docker


def test_unchanged_task_is_not_rebuilt(store, fixture_task):
    task = fixture_task("write-greeting")
    tag1 = store.build(task)
    image_id = store.client.images.get(tag1).id
    tag2 = store.build(task)
    assert tag1 == tag2 and store.client.images.get(tag2).id == image_id
    assert tag1.startswith("ltenv-task/write-greeting:")


def test_changed_environment_gets_a_new_tag(store, tmp_path):
    dest = tmp_path / "write-greeting"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    tag1 = store.build(load_task(dest))
    (dest / "environment" / "seed.txt").write_text("other\n")
    tag2 = store.build(load_task(dest))
    assert tag1 != tag2
    # Only environment/ counts: editing the tests keeps the tag.
    (dest / "tests" / "test_outputs.py").write_text("def test_x():\n    pass\n")
    assert store.build(load_task(dest)) == tag2
    store.client.images.remove(tag2, force=True)


def test_layers_are_shared_between_tasks(store, fixture_task):
    a = store.prepare(fixture_task("write-greeting"))
    b = store.prepare(fixture_task("oracle-fails"))
    base = store.export("ltenv/base:bookworm")
    # One copy of the base on disk, used by both tasks; each task adds only its own small layers.
    assert set(base.layers) <= set(a.layers) & set(b.layers)
    assert a.layers[: len(base.layers)] == base.layers
    assert a.layers[-1] != b.layers[-1]
    assert (a.layers[-1] / "app" / "seed.txt").read_text() == "seed-write-greeting\n"


def test_docker_save_export_matches_engine_layers(store, fixture_task, tmp_path, monkeypatch):
    """The portable path (docker save) and the fast path (engine overlay2 dirs) unpack the same trees."""
    fast = store.prepare(fixture_task("write-greeting"))
    monkeypatch.setenv("LTENV_NO_ENGINE_LAYERS", "1")
    portable_store = ImageStore(tmp_path / "cache")
    portable = portable_store.export(fast.tag)
    assert [p.name for p in portable.layers] == [p.name for p in fast.layers]
    top_fast, top_portable = fast.layers[-1], portable.layers[-1]
    files_fast = sorted(str(p.relative_to(top_fast)) for p in top_fast.rglob("*"))
    files_portable = sorted(str(p.relative_to(top_portable)) for p in top_portable.rglob("*"))
    assert files_fast == files_portable
    assert (top_portable / "app" / "seed.txt").read_bytes() == (top_fast / "app" / "seed.txt").read_bytes()


def test_prepare_uses_cache_without_engine(store, fixture_task, monkeypatch):
    task = fixture_task("write-greeting")
    first = store.prepare(task)
    cold = ImageStore(store.root)
    monkeypatch.setattr(ImageStore, "client", property(lambda self: pytest.fail("engine contacted")))
    assert cold.prepare(task) == first


def test_missing_base_image_has_clear_error(store, tmp_path):
    dest = tmp_path / "needs-missing-base"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    (dest / "environment" / "Dockerfile").write_text("FROM ltenv-test/definitely-missing:1\n")
    with pytest.raises(ImageError, match=r"definitely-missing.*not available"):
        store.build(load_task(dest))


def test_build_failure_reports_log(store, tmp_path):
    dest = tmp_path / "broken-build"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    (dest / "environment" / "Dockerfile").write_text(
        "FROM ltenv/base:bookworm\nRUN echo about-to-fail && exit 3\n"
    )
    with pytest.raises(ImageError, match="broken-build") as exc:
        store.build(load_task(dest))
    assert "about-to-fail" in str(exc.value)


def test_dockerfile_bases_skips_stage_aliases(tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text(
        "FROM debian:bookworm AS build\nRUN true\nFROM build\nFROM --platform=linux/amd64 alpine:3\n"
    )
    assert dockerfile_bases(df) == ["debian:bookworm", "alpine:3"]


def test_proxy_settings_become_build_args(monkeypatch):
    from ltenv.sandbox.images import proxy_build_args

    for k in list(os.environ):
        if k.lower().endswith("_proxy"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    assert proxy_build_args() == {"HTTPS_PROXY": "http://proxy.internal:3128", "no_proxy": "localhost"}


def test_environment_digest_is_cached_until_a_file_changes(tmp_path, monkeypatch):
    from ltenv.tasks.model import Task

    dest = tmp_path / "write-greeting"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    task = load_task(dest)
    store = ImageStore(tmp_path / "cache")
    calls = []
    real = Task.environment_digest
    monkeypatch.setattr(Task, "environment_digest", lambda self: calls.append(1) or real(self))
    first = store._environment_digest(task)
    assert store._environment_digest(task) == first and len(calls) == 1  # unchanged: not re-read
    (dest / "environment" / "seed.txt").write_text("changed seed, longer than before\n")
    second = store._environment_digest(task)
    assert second != first and len(calls) == 2
