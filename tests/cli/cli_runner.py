"""The in-process CLI runner the CLI tests share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from manara.cli.main import app
from manara.config import Settings
from manara.workspace import Workspace


class Cli:
    """Runs `manara --home <home> …` in-process; environment pinned so the outer shell cannot leak in."""

    def __init__(self, home: Path, database_url: str | None) -> None:
        self.home = home
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {
            "MANARA_HOME": None,
            "MANARA_DATABASE_URL": database_url,
            "MANARA_WAREHOUSE": None,
            "MANARA_DEFAULT_TENANT": None,
            "MANARA_FILE_ROOTS": None,
        }

    def __call__(self, *args: str, env: dict[str, str | None] | None = None, input: str | None = None) -> Any:
        return self.runner.invoke(
            app, ["--home", str(self.home), *args], env={**self.env, **(env or {})}, input=input
        )

    def ok(self, *args: str, **kw: Any) -> Any:
        result = self(*args, **kw)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def fails(self, *args: str, **kw: Any) -> str:
        """The command exits 1 with one readable `error:` line on stderr and no traceback."""
        result = self(*args, **kw)
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
            result.exception
        )
        err = result.stderr
        assert "Traceback" not in result.output and "Traceback" not in err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("error: "), err
        return lines[0]

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).stdout)

    def workspace(self) -> Workspace:
        overrides: dict[str, Any] = {"home": self.home}
        if self.env["MANARA_DATABASE_URL"]:
            overrides["database_url"] = self.env["MANARA_DATABASE_URL"]
        return Workspace.open(Settings(**overrides))
