#!/usr/bin/env python3
"""How much of a folder of real keepalived.conf files `haguard migrate` expresses.

For each ``*.conf`` in DIR (not recursive): migrated completely (exit 0 of `haguard
migrate`: every keyword expressed and the YAML valid), needs decisions (the listed lines),
or refused (not a readable keepalived.conf). Prints N/M and every listed line.

    .venv/bin/python bench/migrate.py ../shared/corpus/keepalived
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from haguard.app.migrate import migrate_file
from haguard.errors import HaguardError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a folder of keepalived.conf files (*.conf)")
    parser.add_argument("--node", default="lb1",
                        help="the director name for files without router_id (default lb1)")
    args = parser.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.dir, "*.conf")))
    if not files:
        print(f"bench/migrate.py: no *.conf in {args.dir}", file=sys.stderr)
        return 2
    complete, decided, refused = [], [], []
    keywords: Counter[str] = Counter()
    for path in files:
        name = os.path.basename(path)
        try:
            result = migrate_file(path, None)
        except HaguardError as exc:
            if "router_id" in str(exc):
                result = migrate_file(path, args.node)
            else:
                refused.append((name, str(exc)))
                continue
        decisions = [f for f in result.findings if f.decision]
        if not decisions and not result.problems:
            complete.append(name)
        else:
            decided.append(name)
        for finding in result.findings:
            print(f"{name}: {str(finding).replace(path, name, 1)}")
            if finding.decision:
                keywords[finding.keyword] += 1
        for problem in result.problems:
            print(f"{name}: the YAML as written: {problem}")
    for name, why in refused:
        print(f"{name}: REFUSED: {why}")
    print()
    print(f"migrated completely: {len(complete)}/{len(files)}"
          + (f" ({', '.join(complete)})" if complete else ""))
    print(f"need a decision: {len(decided)}/{len(files)}; refused: {len(refused)}/{len(files)}")
    if keywords:
        print("keywords needing a decision, by files' lines: "
              + ", ".join(f"{k} {n}" for k, n in keywords.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
