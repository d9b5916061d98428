"""The record every analysis script writes: a list of statements, each with its status, its
assumptions, whether the check passed and the numbers behind it (imported by the scripts beside it;
not part of the hamqcore package).

Statuses, strongest first:
  proven                  a proof is given (in the text) and, where it is a formula, sympy confirms it
  exhaustively checked    checked on every case of a finite set (every level, width and encoding)
  numerically checked     a closed form against an independent computation (Monte Carlo on the C++
                          gradient, a PDE solver, training runs), with a tolerance that can fail
  counterexample          a claimed property reproduced false on a stated case
  measured                a number reported without a closed form to hold it to
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

STATUSES = ("proven", "exhaustively checked", "numerically checked", "counterexample", "measured")


class Record:
    def __init__(self, script: str):
        self.script = script
        self.statements: List[Dict] = []
        self.values: Dict[str, object] = {}

    def add(self, sid: str, statement: str, status: str, passed: bool, assumptions: Sequence[str] = (),
            **values) -> bool:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.statements.append({"id": sid, "statement": statement, "status": status, "passed": bool(passed),
                                "assumptions": list(assumptions), "values": values})
        mark = "ok  " if passed else "FAIL"
        print(f"[{mark}] {status:<21} {sid}: {statement}")
        return bool(passed)

    @property
    def ok(self) -> bool:
        return all(s["passed"] for s in self.statements)

    def write(self, path: Path, markdown: Path = None, title: str = "") -> None:
        path.write_text(json.dumps({"script": self.script, "all_passed": self.ok, "statements": self.statements,
                                    **self.values}, indent=2, default=float))
        if markdown is not None:
            lines = [f"# {title or self.script}", ""]
            for s in self.statements:
                lines.append(f"- **{s['id']}** ({s['status']}{'' if s['passed'] else ', FAILED'}): {s['statement']}")
                if s["assumptions"]:
                    lines.append(f"  - assumptions: {'; '.join(s['assumptions'])}")
            markdown.write_text("\n".join(lines) + "\n")


def parse_args(doc: str, argv=None, extra=()) -> Tuple[argparse.Namespace, Path]:
    """The scripts' shared command line: --quick, --out DIR (created), and ``extra`` (name, kwargs)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="hamq_density")
    for name, kwargs in extra:
        ap.add_argument(name, **kwargs)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return args, out
