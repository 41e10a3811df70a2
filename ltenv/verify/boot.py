"""Start-up of the verifier's pristine Python (``python -s -S -B boot.py ARGS``), inside the verifier's view.

Not imported by the package: the verifier copies it to ``/.ltenv-verifier/boot.py`` and the shell functions of
``prelude.sh`` run it with the task image's own interpreter, as built. It

* puts only the pristine image's site directories on ``sys.path`` (their ``.pth`` files are the image's own),
  never the working directory or anything the agent could have written;
* removes its own variables (and the shell functions the prelude exported) from ``os.environ``, so programs the
  tests start see a plain environment and the agent's own toolchain;
* behaves like the ``python`` command line it stands for (``-m MODULE``, ``-c CODE``, a script, or stdin);
* runs pytest with its configuration pinned to the tests' own directory (``--rootdir``, ``--confcutdir``,
  ``-c``; no cache) and reports each session's counts to the verifier on a private descriptor.
"""

import os
import sys

IMAGE = "/.ltenv-verifier/image"
VIEW_INI = "/.ltenv-verifier/pytest.ini"
SHIMS = "/.ltenv-verifier/bin"
TRUSTED_INI_ROOT = "/tests"
INI_NAMES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def _setup() -> int:
    venv = os.environ.pop("LTENV_VENV", "")
    venv_system = os.environ.pop("LTENV_VENV_SYSTEM", "0") == "1"
    os.environ.pop("PYTHONHOME", None)
    for key in [k for k in os.environ if k.startswith("BASH_FUNC_")]:
        del os.environ[key]
    path = os.environ.get("PATH", "").split(":")
    os.environ["PATH"] = ":".join(d for d in path if d != SHIMS)  # programs the tests start: the agent's
    fd = int(os.environ.pop("LTENV_REPORT_FD", "-1") or -1)
    if fd >= 0:
        try:
            os.set_inheritable(fd, False)  # programs the tests start cannot write reports
        except OSError:
            fd = -1
    del sys.path[0]  # this file's directory
    import site

    dirs = []
    if venv:
        dirs += sorted(
            os.path.join(venv, "lib", d, "site-packages")
            for d in os.listdir(os.path.join(venv, "lib"))
            if d.startswith("python")
        )
    if not venv or venv_system:
        dirs += site.getsitepackages([sys.prefix, sys.exec_prefix])
    for d in dirs:
        if d.startswith(IMAGE) and os.path.isdir(d):
            site.addsitedir(d)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: programs the tests start cannot ptrace us
    except (OSError, AttributeError):
        pass
    return fd


def _path_args(args: list[str]) -> list[str]:
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in (
            "-k",
            "-m",
            "-p",
            "-o",
            "-W",
            "-c",
            "--junitxml",
            "--junit-xml",
            "--ctrf",
            "--basetemp",
            "-r",
        ):
            skip = True
            continue
        if a.startswith("-"):
            continue
        path = a.split("::", 1)[0]
        if os.path.exists(path):
            out.append(os.path.abspath(path))
    return out


class _PinPytestMain:
    """An import hook: the first ``import pytest`` gets a ``pytest.main`` that runs :func:`run_pytest`, so a
    script calling ``pytest.main([...])`` is pinned and reported like ``python -m pytest``."""

    def __init__(self, report_fd: int) -> None:
        self.report_fd = report_fd

    def find_spec(self, name, path=None, target=None):
        if name != "pytest":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("pytest")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module
        report_fd = self.report_fd

        def exec_module(module) -> None:
            load(module)
            real = module.main

            def main(args=None, plugins=None):
                return run_pytest(
                    sys.argv[1:] if args is None else [str(a) for a in args], report_fd, plugins
                )

            module._ltenv_real_main = real
            module.main = main

        spec.loader.exec_module = exec_module
        return spec


def run_pytest(args: list[str], report_fd: int, plugins=None) -> int:
    import json

    import pytest

    real_main = getattr(pytest, "_ltenv_real_main", pytest.main)
    paths = _path_args(args)
    if paths:
        root = os.path.commonpath([p if os.path.isdir(p) else os.path.dirname(p) for p in paths])
    else:
        root = os.getcwd()
    extra = ["-p", "no:cacheprovider"]
    if not any(a.startswith("--rootdir") for a in args):
        extra.append(f"--rootdir={root}")
    if not any(a.startswith("--confcutdir") for a in args):
        extra.append(f"--confcutdir={root}")
    if not any(a == "-c" or a.startswith(("--config-file", "-c=")) for a in args):
        ini = VIEW_INI
        if root == TRUSTED_INI_ROOT or root.startswith(TRUSTED_INI_ROOT + "/"):
            for name in INI_NAMES:
                candidate = os.path.join(root, name)
                if os.path.isfile(candidate):
                    ini = candidate
                    break
        extra += ["-c", ini]

    class Reporter:
        def __init__(self) -> None:
            self.counts = {"collected": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0}
            self.failures: list[str] = []
            self.sent = False

        def pytest_collection_finish(self, session) -> None:
            self.counts["collected"] = len(session.items)

        def pytest_collectreport(self, report) -> None:
            if report.failed:
                self.counts["errors"] += 1
                self.failures.append(str(report.nodeid) or "collection")

        def pytest_runtest_logreport(self, report) -> None:
            if report.when == "call" or (report.when == "setup" and not report.passed):
                if hasattr(report, "wasxfail"):
                    self.counts["xfailed" if report.skipped else "failed"] += 1
                elif report.passed:
                    self.counts["passed"] += 1
                elif report.skipped:
                    self.counts["skipped"] += 1
                else:
                    self.counts["failed" if report.when == "call" else "errors"] += 1
                    self.failures.append(report.nodeid)
            elif report.when == "teardown" and report.failed:
                self.counts["errors"] += 1
                self.failures.append(report.nodeid)

        def pytest_sessionfinish(self, session, exitstatus) -> None:
            self.send(int(exitstatus))

        def send(self, exitstatus: int, crashed: str = "") -> None:
            if report_fd < 0 or self.sent:
                return
            self.sent = True
            line = {**self.counts, "exitstatus": exitstatus, "failures": self.failures[:50], "args": args}
            if crashed:
                line["crashed"] = crashed[-500:]
            try:
                os.write(report_fd, (json.dumps(line) + "\n").encode())
            except OSError:
                pass

    reporter = Reporter()
    if report_fd >= 0:  # a session that starts and never reports was killed: the verdict cannot stand
        try:
            os.write(report_fd, (json.dumps({"event": "start", "args": args}) + "\n").encode())
        except OSError:
            pass
    try:
        code = int(real_main(extra + args, plugins=[*(plugins or []), reporter]))
    except BaseException as e:  # pytest itself crashed: reported, not lost
        reporter.send(3, crashed=f"{type(e).__name__}: {e}")
        raise
    reporter.send(code, crashed="pytest ended without finishing its session" if code == 3 else "")
    return code


_NO_ARG = set("bBdEhiIOPqRsSuvVx")


def main() -> None:
    report_fd = _setup()
    sys.meta_path.insert(0, _PinPytestMain(report_fd))
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            break
        if a.startswith("--"):  # --version, --help...
            i += 1
            continue
        flags = a[1:]
        j = 0
        while j < len(flags):
            c = flags[j]
            if c in "cm":
                value = flags[j + 1 :] or (args[i + 1] if i + 1 < len(args) else "")
                rest = args[i + (1 if flags[j + 1 :] else 2) :]
                if c == "c":
                    sys.argv = ["-c", *rest]
                    exec(compile(value, "<string>", "exec"), {"__name__": "__main__"})
                    return
                if value in ("pytest", "py.test"):
                    sys.argv = ["pytest", *rest]
                    sys.exit(run_pytest(rest, report_fd))
                import runpy

                sys.argv = [value, *rest]
                runpy.run_module(value, run_name="__main__", alter_sys=True)
                return
            if c in "WX":  # an option with a value: -W default, -X dev
                if not flags[j + 1 :]:
                    i += 1
                break
            if c == "u":
                for stream in (sys.stdout, sys.stderr):
                    stream.reconfigure(write_through=True)
            j += 1
        i += 1
    rest = args[i:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest or rest[0] == "-":
        sys.argv = rest or [""]
        exec(compile(sys.stdin.read(), "<stdin>", "exec"), {"__name__": "__main__"})
        return
    import runpy

    sys.argv = rest
    sys.path.insert(0, os.path.dirname(os.path.abspath(rest[0])))
    runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
