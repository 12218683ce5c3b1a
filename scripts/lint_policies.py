#!/usr/bin/env python3
"""Lints IAM policy documents against AWS's Service Authorization Reference.

The data comes with parliament (pinned in emulator-requirements.txt): for each
action, the resource types it supports and the condition keys it accepts.
Usage: lint_policies.py DIR. Every DIR/*.json is {"name", "kind", "document"},
kind "identity" (an identity policy) or "trust" (a role's trust policy, which
has a Principal and no Resource). Prints every finding, one a line, and exits
1 if there is any. A test tool: not part of the product.
"""
import json
import pathlib
import sys

from parliament import analyze_policy_string


def findings(kind, document):
    for f in analyze_policy_string(json.dumps(document)).findings:
        # A trust policy is a resource policy: it names a Principal, never a Resource.
        if kind == "trust" and f.issue == "MALFORMED" and "Resource" in str(f.detail):
            continue
        yield f


def main():
    bad = 0
    files = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
    for p in files:
        entry = json.loads(p.read_text())
        for f in findings(entry["kind"], entry["document"]):
            bad += 1
            print(f"{entry['name']}: {f.issue}: {f.detail}")
    print(f"{len(files)} policies checked, {bad} findings")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
