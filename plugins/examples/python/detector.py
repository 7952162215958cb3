"""The `scan` resource of py-traceback (see app.py)."""

import re
from typing import List, Optional, Tuple

from wit_world.exports import detector as api
from wit_world.imports import types, log

C = types.Category
# Exception type -> (category, failure type, remedies)
KINDS = {
    "ModuleNotFoundError": (C.DEPENDENCY, "python-module-missing", ["clear-cache-and-retry", "diagnose"]),
    "ImportError": (C.DEPENDENCY, "python-import-error", ["diagnose"]),
    "ConnectionError": (C.NETWORK, "python-connection-error", ["retry-with-backoff"]),
    "ConnectionRefusedError": (C.NETWORK, "python-connection-refused", ["retry-with-backoff"]),
    "ConnectionResetError": (C.NETWORK, "python-connection-reset", ["retry-with-backoff"]),
    "TimeoutError": (C.TIMEOUT, "python-timeout", ["retry-with-backoff"]),
    "MemoryError": (C.RESOURCE, "python-memory", ["reduce-pressure"]),
    "PermissionError": (C.PERMISSION, "python-permission", ["diagnose"]),
    "AssertionError": (C.TEST, "python-assertion", ["rerun-failed-tests", "diagnose"]),
}
FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
FINAL = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s*(?P<msg>.*))?$")


class Scan(api.Scan):
    def __init__(self, job: types.Job) -> None:
        self.in_traceback = False
        self.frame: Optional[Tuple[int, str]] = None
        self.start: Optional[Tuple[int, str]] = None
        self.last: Optional[Tuple[Tuple[int, str], Tuple[int, str], Optional[Tuple[int, str]]]] = None

    def feed(self, chunk: str, first_line: int) -> None:
        for i, text in enumerate(chunk.split("\n")):
            n = first_line + i
            if text.startswith("Traceback (most recent call last):"):
                self.in_traceback, self.frame, self.start = True, None, (n, text)
                continue
            if not self.in_traceback:
                continue
            if FRAME.match(text):
                self.frame = (n, text.strip())
            elif FINAL.match(text):
                self.last = ((n, text), self.start, self.frame)
                self.in_traceback = False

    def finish(self) -> List[types.Finding]:
        if self.last is None:
            return []
        (n, text), start, frame = self.last
        exc = FINAL.match(text).group("type").split(".")[-1]
        category, failure_type, remedies = KINDS.get(exc, (C.OTHER, "python-uncaught-exception", ["diagnose"]))
        evidence = [types.Evidence(line=n, text=text)]
        facts = [("exception", exc)]
        if frame:
            evidence.append(types.Evidence(line=frame[0], text=frame[1]))
            m = FRAME.match(frame[1])
            facts.append(("frame", f'{m.group("file")}:{m.group("line")}'))
        log.log(log.Level.DEBUG, f"py-traceback: {exc} at line {n}")
        return [types.Finding(rule=f"py-traceback.{exc}", category=category, failure_type=failure_type,
                              confidence=0.75, evidence=evidence, remedies=remedies, facts=facts)]
