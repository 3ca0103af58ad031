"""Reads ARM JSON documents through Microsoft's own models (the `azure-mgmt-network`
package from PyPI) and checks the fields vpnbridge relies on.

Input (stdin): a JSON list of {"what", "model", "body", "expect": [[path, value], ...]}.
A path is dotted attribute access on the deserialised model, with [i] for list items
and dict keys for tags (e.g. "properties.ip_configurations[1].properties.public_ip_address.id").
The models map wire names, so a misspelled or misplaced field reads back as None and
the check fails. Prints every mismatch; exit status 1 if there is one.
"""

import json
import re
import sys

import azure.mgmt.network.models as models


def resolve(obj, path):
    for part in path.split("."):
        m = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
        name, indexes = m.group(1), m.group(2)
        if obj is None:
            return None
        if isinstance(obj, dict) and not hasattr(obj, name):
            obj = obj.get(name)
        else:
            obj = getattr(obj, name, None)
        for i in re.findall(r"\[(\d+)\]", indexes):
            if obj is None or len(obj) <= int(i):
                return None
            obj = obj[int(i)]
    return obj


def main():
    docs = json.load(sys.stdin)
    failures = []
    checked = 0
    for doc in docs:
        cls = getattr(models, doc["model"])
        value = cls(doc["body"])
        for path, expected in doc["expect"]:
            actual = resolve(value, path)
            checked += 1
            if actual != expected:
                failures.append(f'{doc["what"]} ({doc["model"]}): {path} = {actual!r}, expected {expected!r}')
    for f in failures:
        print(f)
    print(f"checked {checked} fields in {len(docs)} documents, {len(failures)} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
