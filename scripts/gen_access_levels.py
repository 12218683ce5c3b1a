#!/usr/bin/env python3
"""Writes data/access-levels.txt: every IAM action's access level, from AWS's
Service Authorization Reference as parliament (pinned in
emulator-requirements.txt) ships it, the same data the policy lint uses.

One line per service prefix and level: `PREFIX LEVEL Action Action ...`,
LEVEL one of R (Read), L (List), W (Write), P (Permissions management),
T (Tagging). Sorted, so a regenerated file diffs cleanly. `--check FILE`
exits 1 when FILE differs from what the pinned data gives (make test runs it).
"""
import json
import pathlib
import sys

import parliament

LEVELS = {"Read": "R", "List": "L", "Write": "W", "Permissions management": "P", "Tagging": "T"}


def render():
    path = pathlib.Path(parliament.__file__).parent / "iam_definition.json"
    groups = {}
    for service in json.loads(path.read_text()):
        for p in service["privileges"]:
            key = (service["prefix"], LEVELS[p["access_level"]])
            groups.setdefault(key, set()).add(p["privilege"])
    lines = [f"{prefix} {level} {' '.join(sorted(actions))}" for (prefix, level), actions in sorted(groups.items())]
    return "\n".join(lines) + "\n"


def main():
    text = render()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        if pathlib.Path(sys.argv[2]).read_text() != text:
            print(f"{sys.argv[2]} is stale: run scripts/gen_access_levels.py > {sys.argv[2]}")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
