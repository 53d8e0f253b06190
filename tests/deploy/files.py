"""Pure readers of the deployment files: Dockerfile instructions, .dockerignore, env files.

Kept apart from the tests so that the rules they enforce are plain functions, tested on broken
copies as well as on the real files.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import AliasChoices

from marketdata.settings import Settings

#: Names that look like they hold a secret: never given a value in an image.
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|PASSWD", re.IGNORECASE)

#: Variables of deploy/.env.example that are not marketdata settings, and who reads them.
FOREIGN_VARIABLES = {"POSTGRES_PASSWORD": "the TimescaleDB image (and compose interpolation)"}


# -- Dockerfile -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of a CMD/ENTRYPOINT/HEALTHCHECK (after its options), or []."""
        text = self.args.split(" CMD ", 1)[1] if self.keyword == "HEALTHCHECK" else self.args
        try:
            value = json.loads(text.strip())
        except ValueError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """The instructions from one FROM up to the next."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """The ENV values this stage sets (later ones win)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(assignments(instruction.args))
        return values


def assignments(args: str) -> dict[str, str]:
    """``K=V K2="V 2"`` (or the legacy ``K V``) as a dict."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, ``\\`` continuations joined."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        found.append(Instruction(keyword=keyword.upper(), args=args.strip()))
    return found


def stages(text: str) -> list[Stage]:
    """The build stages of a Dockerfile, in order (global ARGs before the first are dropped)."""
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name))
        elif result:
            result[-1].instructions.append(instruction)
    return result


def dockerfile_problems(text: str) -> list[str]:
    """What ``text`` breaks of our image rules; [] when it keeps them all."""
    found = stages(text)
    if len(found) < 2:
        return ["not multi-stage: build and runtime must be separate stages"]
    build, final = found[0], found[-1]
    problems: list[str] = []
    copied = " ".join(i.args for i in build.all("COPY"))
    if "uv.lock" not in copied:
        problems.append("the build stage does not copy uv.lock")
    syncs = [i.args for i in build.all("RUN") if "uv sync" in i.args]
    if not syncs or not all("--locked" in s and "--no-dev" in s for s in syncs):
        problems.append("not every `uv sync` is --locked --no-dev")
    if not syncs or "--no-editable" not in syncs[-1]:
        problems.append("the project is not installed --no-editable")
    if not any("--from=" in i.args for i in final.all("COPY")):
        problems.append("the runtime stage copies nothing from the build stage")
    users = final.all("USER")
    if not users or users[-1].args.split(":")[0] in ("root", "0"):
        problems.append("the runtime stage runs as root")
    checks = final.all("HEALTHCHECK")
    if not checks or "/health" not in " ".join(checks[-1].exec_form()):
        problems.append("no HEALTHCHECK on /health")
    if not any("8000" in i.args.split() for i in final.all("EXPOSE")):
        problems.append("port 8000 is not exposed")
    env = final.env()
    if env.get("MARKETDATA_HOST") != "0.0.0.0" or env.get("MARKETDATA_DATA_DIR") != "/data":
        problems.append("MARKETDATA_HOST=0.0.0.0 and MARKETDATA_DATA_DIR=/data are not set")
    if not any("/data" in i.args for i in final.all("VOLUME")):
        problems.append("/data is not a volume")
    cmd = " ".join(final.all("CMD")[-1].exec_form()) if final.all("CMD") else ""
    if "marketdata serve" not in cmd:
        problems.append("CMD does not run `marketdata serve`")
    for stage in found:
        for instruction in stage.all("ENV") + stage.all("ARG"):
            for name, value in assignments(instruction.args).items():
                if SECRET_NAME.search(name):
                    problems.append(f"{instruction.keyword} {name}={value} bakes a secret in")
    return problems


# -- .dockerignore ----------------------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str], str]]:
    """(is an exception, matcher, cleaned pattern) for each rule of a .dockerignore."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negated, _regex(pattern), pattern))
    return rules


def excluded(rules: Sequence[tuple[bool, re.Pattern[str], str]], path: str) -> bool:
    """Whether ``path`` (relative, ``/``-separated) stays out of the build context.

    As Docker does: a rule matching a directory also matches what is inside it, and the last
    matching rule decides.
    """
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, regex, _ in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def may_include_below(rules: Sequence[tuple[bool, re.Pattern[str], str]], directory: str) -> bool:
    """Whether an exception rule could bring back something under an excluded ``directory``."""
    return any(
        negated and (pattern.startswith(directory + "/") or "*" in pattern)
        for negated, _, pattern in rules
    )


# -- settings and env files -------------------------------------------------------------------


@lru_cache(maxsize=1)
def settings_variables() -> frozenset[str]:
    """Every environment variable name that sets a field of :class:`Settings`."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}".upper())
    return frozenset(names)


_ASSIGNMENT = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=")


def env_file_names(text: str) -> list[str]:
    """The names assigned in an env file, commented-out assignments (``# NAME=…``) included."""
    return [m.group(1) for line in text.splitlines() if (m := _ASSIGNMENT.match(line))]


def unknown_variables(names: Iterable[str]) -> list[str]:
    """The ``names`` that are neither a setting nor a known foreign variable."""
    known = settings_variables() | FOREIGN_VARIABLES.keys()
    return sorted(set(names) - known)
