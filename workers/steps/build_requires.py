"""PEP 517's get_requires_for_build_wheel, run on an unpacked sdist.

Usage: build_requires.py <sdist> <backend site dir> <output json>. Run with `python3 -S`: only
the backend's site directory (the sdist's declared requirements) is importable, as in pip's
isolated build environment; `backend-path` is honoured. Writes the requirements the backend
adds as a JSON list of strings.
"""

import importlib
import json
import os
import site
import sys
import tarfile
import zipfile

DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"


def unpack(sdist, into):
    if sdist.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            archive.extractall(into)
    else:
        with tarfile.open(sdist) as archive:
            archive.extractall(into, filter="data")
    entries = [entry for entry in os.listdir(into) if os.path.isdir(os.path.join(into, entry))]
    if len(entries) != 1:
        raise SystemExit(f"edelweiss: the sdist should unpack into one directory, not {entries}")
    return os.path.join(into, entries[0])


def build_system(tree):
    path = os.path.join(tree, "pyproject.toml")
    if not os.path.exists(path):
        return {}
    import tomllib

    with open(path, "rb") as file:
        return tomllib.load(file).get("build-system", {})


def load_backend(tree, system):
    reference = system.get("build-backend") or DEFAULT_BACKEND
    for entry in reversed(system.get("backend-path", [])):
        path = os.path.abspath(os.path.join(tree, entry))
        if os.path.commonpath([path, tree]) != tree:
            raise SystemExit(f"edelweiss: backend-path {entry!r} leaves the source tree")
        sys.path.insert(0, path)
    module_name, _, attribute = reference.partition(":")
    backend = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        backend = getattr(backend, part)
    return reference, backend


def main():
    sdist, backend_site, output = sys.argv[1:4]
    site.addsitedir(backend_site)
    tree = os.path.realpath(unpack(sdist, "/scratch/src"))
    os.chdir(tree)
    system = build_system(tree)
    reference, backend = load_backend(tree, system)
    hook = getattr(backend, "get_requires_for_build_wheel", None)
    requires = list(hook({})) if hook is not None else []
    print(f"edelweiss: backend {reference} adds {requires}")
    with open(output, "w") as file:
        json.dump([str(requirement) for requirement in requires], file)


main()
