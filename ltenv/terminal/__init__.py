"""The agent's terminal: a PTY shell session inside a sandbox."""

from ltenv.terminal.session import CommandResult, ShellExited, ShellSession

__all__ = ["CommandResult", "ShellExited", "ShellSession"]
