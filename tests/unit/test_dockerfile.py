"""The Dockerfile, read as text: the image installs no learning stack, does not run as root, and takes its
base by digest and every Python package from a lock file with hashes.

No Docker engine is needed: this parses the instructions (continuations joined, comments dropped)
and checks what a reviewer would check by eye, so a careless edit cannot slip torch into the image
or drop the non-root user.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, in order, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def _args(steps: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for k, args in steps if k == keyword]


def test_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM x\nRUN a \\\n  # inside\n  && b\nUSER 1\n"
    assert instructions(text) == [("FROM", "x"), ("RUN", "a  && b"), ("USER", "1")]


LOCK = ROOT / "requirements" / "image.lock"


def test_base_image_is_python_311_slim_pinned_by_digest(steps: list[tuple[str, str]]) -> None:
    (base,) = _args(steps, "FROM")
    image, _, digest = base.partition("@")
    assert image == "python:3.11-slim"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"FROM {base}: pin the base image by its digest"


def pip_installs(steps: list[tuple[str, str]]) -> list[list[str]]:
    return [words[words.index("install"):] for run in _args(steps, "RUN")
            for words in (shlex.split(run.split("&&")[0]),) if "pip" in words and "install" in words]


def test_every_package_comes_from_the_lock_file_with_hashes(steps: list[tuple[str, str]]) -> None:
    locked, project = pip_installs(steps)
    assert "--require-hashes" in locked
    assert locked[locked.index("-r") + 1] == str(LOCK.relative_to(ROOT))
    assert "--only-binary" in locked  # no sdist is built: nothing runs a package's setup code
    assert {"--no-deps", "--no-build-isolation"} <= set(project), "the project build must fetch nothing unhashed"
    for words in (locked, project):
        assert "--no-cache-dir" in words


def locked_packages() -> dict[str, list[str]]:
    """name → hashes, from requirements/image.lock (pip's hash-checking format)."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==\S+", line):
            name = m.group(1).lower().replace("_", "-")
            out.setdefault(name, [])
        elif name and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            out[name].append(h.group(1))
    return out


def test_the_lock_pins_every_dependency_of_the_image_with_hashes() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*pyproject["project"]["dependencies"], *pyproject["project"]["optional-dependencies"]["operator"],
              *pyproject["project"]["optional-dependencies"]["cluster"], *pyproject["build-system"]["requires"]]
    packages = locked_packages()
    for requirement in wanted:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in packages, f"{requirement}: not in {LOCK.name} (run make lock)"
    assert all(packages.values()), [name for name, hashes in packages.items() if not hashes]
    assert not {"torch", "pettingzoo"} & packages.keys(), "the learning stack is not the image's"


def test_installs_the_operator_and_cluster_extras_only(steps: list[tuple[str, str]]) -> None:
    installs = pip_installs(steps)
    assert len(installs) == 2, installs
    words = installs[1]
    targets = [w for w in words if w.startswith(".[")]
    assert targets == [".[operator,cluster]"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert {"operator", "cluster"} <= extras.keys()
    requirements = " ".join(extras["operator"] + extras["cluster"] + pyproject["project"]["dependencies"])
    assert not re.search(r"\b(torch|pettingzoo)\b", requirements), "the image's extras pull the learning stack"
    assert "learn" not in " ".join(_args(steps, "RUN")), "the learn extra (torch) must stay out of the image"


def test_runs_as_a_numeric_non_root_user(steps: list[tuple[str, str]]) -> None:
    users = _args(steps, "USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"USER {users[-1]}: runAsNonRoot can only verify a numeric uid"
    assert int(uid) > 0, f"USER {users[-1]}: uid 0 is root"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    last_user = max(i for i, (k, _) in enumerate(steps) if k == "USER")
    assert all(k != "RUN" for k, _ in steps[last_user:]), "a RUN after the last USER would hint at root steps"


def test_entrypoint_is_the_kubeagora_cli(steps: list[tuple[str, str]]) -> None:
    (entrypoint,) = _args(steps, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["kubeagora"]


def test_copied_sources_exist_and_are_in_the_build_context(steps: list[tuple[str, str]]) -> None:
    sources = [src for args in _args(steps, "COPY") for src in args.split()[:-1] if not src.startswith("--")]
    assert sources
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert f"!{src.rstrip('/')}" in ignore or f"!{src.rstrip('/')}/" in ignore, (
            f"COPY {src}: .dockerignore excludes it from the build context"
        )


def test_installs_the_tools_the_operator_runs(steps: list[tuple[str, str]]) -> None:
    """The webhook's self-signed certificate is made by the openssl tool, which the slim base may lack."""
    uses_openssl = '"openssl"' in (ROOT / "src" / "kubeagora" / "operator" / "admission.py").read_text()
    installed = [w for run in _args(steps, "RUN") if "apt-get" in run for w in shlex.split(run)]
    assert not uses_openssl or "openssl" in installed
