#!/usr/bin/env python3
"""How many of a folder of real ipvsadm rule files `haguard ipvs import` reads.

For each ``*.save`` in DIR: imported (its YAML loads back as the same table) or refused
(every line-precise message printed). ``--expect-refuse FILE`` names the files whose
right answer is a refusal (broken in the original); those count as right when refused.

    .venv/bin/python bench/ipvs_import.py ../shared/corpus/ipvsadm \\
        --expect-refuse ../shared/corpus/expect-refuse.txt
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from haguard.adapters.netdb import service_ports
from haguard.core.config import loads
from haguard.core.ipvsadm import dump_yaml, parse_save
from haguard.errors import ConfigError

DIRECTOR = "node: {name: lb1}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a folder of ipvsadm rule files (*.save)")
    parser.add_argument("--expect-refuse", metavar="FILE",
                        help="names (one per line) of files that must be refused")
    args = parser.parse_args(argv)
    expected: set[str] = set()
    if args.expect_refuse:
        with open(args.expect_refuse, encoding="utf-8") as fh:
            expected = {os.path.basename(line.strip()) for line in fh if line.strip()}
    files = sorted(glob.glob(os.path.join(args.dir, "*.save")))
    if not files:
        print(f"bench/ipvs_import.py: no *.save in {args.dir}", file=sys.stderr)
        return 2
    ports = service_ports()
    right = 0
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        try:
            services = parse_save(text, name, ports)
            yaml_text = dump_yaml(services)
            config = loads(DIRECTOR + yaml_text, filename=f"{name} (as YAML)")
            assert config.ipvs is not None and config.ipvs.services == services, name
        except ConfigError as exc:
            verdict = "refused, as expected" if name in expected else "REFUSED"
            right += name in expected
            print(f"{name}: {verdict} ({len(exc.problems)} line(s))")
            for problem in exc.problems:
                print(f"    {problem}")
            continue
        verdict = "IMPORTED, but expected a refusal" if name in expected else "imported"
        right += name not in expected
        print(f"{name}: {verdict}: {len(services)} service(s), "
              f"{sum(len(s.real_servers) for s in services)} real server(s)")
    print(f"\nright: {right}/{len(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
