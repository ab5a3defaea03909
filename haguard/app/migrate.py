"""``haguard migrate``: a keepalived.conf in, haguard's YAML and the open decisions out."""

from __future__ import annotations

from dataclasses import dataclass

from haguard.adapters.kafiles import ProgramPaths, read_keepalived_conf
from haguard.core.config import loads
from haguard.core.migrate import Finding, migrate, to_yaml
from haguard.errors import ConfigError


@dataclass(frozen=True)
class MigrationResult:
    """The YAML text and every line that needs the operator's decision."""

    text: str
    findings: tuple[Finding, ...]
    problems: tuple[str, ...]     # what `haguard check` would say of the YAML as written


def migrate_file(path: str, node: str | None = None) -> MigrationResult:
    """Translate ``path`` (includes followed); validate the YAML as haguard will read it."""
    migration = migrate(read_keepalived_conf(path), node, ProgramPaths())
    text = to_yaml(migration, path)
    problems: tuple[str, ...] = ()
    try:
        loads(text, filename="<migrated>")
    except ConfigError as exc:
        problems = tuple(exc.problems)
    return MigrationResult(text=text, findings=migration.findings, problems=problems)
