#!/usr/bin/env python3
"""Makes data/demo/: the small task `make demo` fine-tunes SmolLM2-135M-Instruct on.

Task: a date written in words (many styles: "March 5, 2021", "the 5th of March 2021", "5 Mar 2021",
"2021, March 5", ...) in, the same date as ISO 8601 "YYYY-MM-DD" out, and nothing else. The base
135M model gets months, zero padding or the bare format wrong, or keeps talking; the answer is one
exact string, so the result is checkable.

Run:  python3 tools/make_demo_data.py      (standard library only; deterministic, seed 2024)
Writes data/demo/
  train.jsonl  400 chat examples {"messages": [user, assistant]} (lorac train's chat format)
  eval.jsonl    60 held-out chat examples (lorac eval: loss on the assistant turns)
  test.jsonl    20 held-out {"prompt", "completion"} pairs (lorac generate --chat --data; the
                completion is the exact answer)
No date appears in two files.
"""
import datetime
import json
import os
import random

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
ABBR = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
INSTRUCTION = "Write this date as YYYY-MM-DD: "


def ordinal(d):
    return str(d) + ("th" if 11 <= d % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th"))


STYLES = [
    lambda y, m, d: f"{MONTHS[m]} {d}, {y}",
    lambda y, m, d: f"{d} {MONTHS[m]} {y}",
    lambda y, m, d: f"the {ordinal(d)} of {MONTHS[m]} {y}",
    lambda y, m, d: f"{MONTHS[m]} {ordinal(d)}, {y}",
    lambda y, m, d: f"{ABBR[m]} {d}, {y}",
    lambda y, m, d: f"{d} {ABBR[m]} {y}",
    lambda y, m, d: f"{y}, {MONTHS[m]} {d}",
    lambda y, m, d: f"{ordinal(d)} {MONTHS[m]}, {y}",
]


def example(rng):
    day = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 90))
    text = rng.choice(STYLES)(day.year, day.month - 1, day.day)
    return day.isoformat(), INSTRUCTION + text


def main():
    rng = random.Random(2024)
    seen, rows = set(), []
    while len(rows) < 480:
        iso, prompt = example(rng)
        if iso in seen:
            continue
        seen.add(iso)
        rows.append((prompt, iso))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "demo")
    os.makedirs(out, exist_ok=True)

    def chat(rows_, path):
        with open(path, "w", encoding="utf-8") as f:
            for p, a in rows_:
                msgs = [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
                f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")

    chat(rows[:400], os.path.join(out, "train.jsonl"))
    chat(rows[400:460], os.path.join(out, "eval.jsonl"))
    with open(os.path.join(out, "test.jsonl"), "w", encoding="utf-8") as f:
        for p, a in rows[460:]:
            f.write(json.dumps({"prompt": p, "completion": a}, ensure_ascii=False) + "\n")
    print("wrote", out, "(400 train, 60 eval, 20 test)")


if __name__ == "__main__":
    main()
