"""Prints tonight's placements from `refer intake status --json` outputs on stdin.

Usage: report.py NAMES_JSON  (a map from "provider <id>" / "donation <id>" to a name)
"""
import json
import sys

names = json.load(open(sys.argv[1]))
text = sys.stdin.read()
rows, decoder, i = [], json.JSONDecoder(), 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    value, i = decoder.raw_decode(text, i)
    rows.extend(value)

people = {}
for row in rows:
    people.setdefault(row["case"], {})[row["kind"]] = row
kinds = ["shelter", "medical", "counseling", "legal", "transport"]
print("person    " + "".join(f"{k:<22}" for k in kinds))
missing = {}
for case in sorted(people):
    cells = []
    for kind in kinds:
        row = people[case].get(kind)
        if row is None:
            cells.append("-")
        elif row["status"] == "accepted":
            cells.append(names.get(row["placed_with"], row["placed_with"]))
        else:
            cells.append(row["status"])
            missing[kind] = missing.get(kind, 0) + 1
    print(f"{case:<10}" + "".join(f"{c[:21]:<22}" for c in cells))
print()
handoffs = sorted({row["detail"] for row in rows if row["status"] == "accepted" and row["detail"].startswith("at ")})
if handoffs:
    print("hand-offs intake received (sealed for the agency only):")
    for line in handoffs:
        print(f"  {line}")
    print()
if missing:
    print("missing capacity: " + ", ".join(f"{n} x {k}" for k, n in sorted(missing.items())))
else:
    print("missing capacity: none, everyone is placed")
