"""The project's requirements (dependencies and the named extras) from pyproject.toml, one per line.

The Dockerfile installs these before it copies the sources, so an edit to the code never
reinstalls the dependency layer:  python3 dependencies.py pyproject.toml slicer dask > req.txt
"""

import sys

import tomllib


def requirements(path: str, extras: list[str]) -> list[str]:
    """``[project] dependencies`` plus each named optional-dependency group, in order, without repeats."""
    with open(path, "rb") as handle:
        project = tomllib.load(handle)["project"]
    groups = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in groups]
    if unknown:
        raise SystemExit(f"{path}: no optional-dependencies group {', '.join(unknown)}")
    out = list(project.get("dependencies", []))
    for extra in extras:
        out += [r for r in groups[extra] if r not in out]
    return out


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
