"""Sums per-backend junit files into one line: 'tests: N passed, N failed, N skipped'."""

import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"[test] cannot read {path}: {exc}")
        sys.exit(1)
    for suite in root.iter("testsuite"):
        total = int(suite.get("tests", 0))
        f = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        s = int(suite.get("skipped", 0))
        failed += f
        skipped += s
        passed += total - f - s
        print(f"[test] {path}: {total - f - s} passed, {f} failed, {s} skipped")
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
