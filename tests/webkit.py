"""A recorded run for the `benchrun view` tests: three candidates on the fake server, one of them hostile.

``evil`` answers with markup and escapes a page must show as text: a script tag (that would mark the
document as ``data-pwned`` if it ran), a stray ``</script>``, a ``javascript:`` link, ANSI escapes,
and on one case a 1 MB line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conftest import GOOD, JUDGE_FAIL, JUDGE_PASS, Project, make_cases
from fakeserver import FakeServer

EVIL = ("<script>document.documentElement.setAttribute('data-pwned','1')</script></script>"
        "<a href=\"javascript:document.documentElement.setAttribute('data-pwned','2')\">click me</a> "
        "\x1b[31mred\x1b[0m \x1b]0;retitled\x07 <img src=x onerror=\"document.documentElement.setAttribute('data-pwned','3')\">")
HUGE_CASE = "case-003"
HUGE = "A" * 1_000_000
N_CASES = 12


def config() -> dict[str, Any]:
    return {
        "rules": [
            {"model": "judge", "contains": "I have refunded", "reply": JUDGE_FAIL},
            {"model": "judge", "reply": JUDGE_PASS},
            {"model": "good", "reply": GOOD},
            {"model": "bad", "reply": "I have refunded you the double charge."},
            {"model": "evil", "contains": f"(ticket {int(HUGE_CASE[-3:])})", "reply": HUGE},
            {"model": "evil", "reply": EVIL},
        ],
        "default_reply": "OK",
    }


class WebRun:
    def __init__(self, root: Path, server: FakeServer) -> None:
        self.project = Project(root, server.url)
        self.project.write_dataset(make_cases(N_CASES))
        self.project.write_rubric()
        spec = self.project.write_spec()
        data = yaml.safe_load(spec.read_text())
        data["candidates"].append({"model": "openai/evil", "alias": "evil", "api_base": server.url,
                                   "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}})
        spec.write_text(yaml.safe_dump(data, sort_keys=False))
        r = self.project.cli("run", str(spec))
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        from benchrun import api

        with api.Ledger(self.project.ledger) as led:
            self.run_id = led.runs(1)[0].id
        self.ledger = self.project.ledger
