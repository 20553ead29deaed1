"""Reliability under SIGKILL: searches killed at random moments and mid-write, then rerun.

Usage:
    python benchmarks/faults.py [--kills 10] [--seed 0]

Each kill point runs a search on small synthetic data (8x8 images, 3 classes) in a
child process, in a temporary directory, and kills it with SIGKILL, in turn:
- at a random moment, 2 to 30 s into the search;
- in the middle of its n-th JSON write (the child half-writes the temporary file
  that `kerasnas.files.write_json` would rename, then kills itself);
- in the middle of its n-th checkpoint write (the same, for the copy of the
  weights into the run directory).
`fit` is then run again on the same directory with `time_limit=20` (`--rerun-limits`
takes several, e.g. `20,60`: each kill point is then run once per limit).
A kill point holds when the rerun exits normally, its `fit` takes at most the limit
plus 5 s (the time limit's promise), and every trial completed before the kill is still
completed after it.

Prints one JSON line per kill point (`over_s`: the rerun's `fit` time past its limit),
then a table row per limit: how many held, the largest overshoot, the trials lost.
Exits with 1 when a kill point did not hold. The other
faults (corrupt files, a full disk, bad input, the CLI's failures) are tested by
the test suite, `tests/test_image.py` and `tests/test_faults.py` among others.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RERUN_LIMITS = "20"  # the reruns' time_limit, seconds
SLACK = 5.0  # seconds over the time limit that still count as "within it"

# A search in a child process. `mode` "json" or "checkpoint" kills it halfway through
# its n-th such write; "time" leaves the killing to the parent; "none" runs it whole.
SEARCH = """
import time
import kerasnas
from kerasnas.testing import die_halfway_through, quadrant_images

mode, n = {mode!r}, {n}
if mode in ("json", "checkpoint"):
    die_halfway_through(mode, lambda path, count: count == n)
x, y = quadrant_images(300, 10)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, verbose=True)
print("START", time.time(), flush=True)
clf.fit(x, y, time_limit={time_limit}, epochs=3)
print("FIT-DONE", time.time(), flush=True)
"""


def search_code(mode, n, directory, time_limit):
    """The Python source of one search (see `SEARCH`)."""
    return SEARCH.format(mode=mode, n=n, directory=directory, time_limit=time_limit)


def completed_trials(project_dir):
    """The ids of the trials whose trial.json says COMPLETED (unreadable files: not)."""
    done = set()
    for path in glob.glob(os.path.join(project_dir, "trial_*", "trial.json")):
        try:
            with open(path) as f:
                if json.load(f).get("status") == "COMPLETED":
                    done.add(os.path.basename(os.path.dirname(path))[len("trial_") :])
        except (OSError, ValueError):
            pass
    return done


def kill_once(mode, n, rerun_limit):
    """Runs a search killed at (mode, n), reruns it; returns a result dict."""
    directory = tempfile.mkdtemp(prefix=f"faults_kill_{mode}_")
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", search_code(mode, n, directory, time_limit=40)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if mode == "time":
        # Wait for the search to start, then kill it n/10 s later.
        for line in child.stdout:
            if line.startswith("START"):
                break
        time.sleep(n / 10)
        child.kill()
    child.communicate(timeout=300)
    killed = child.returncode == -9
    project = os.path.join(directory, "image_classifier")
    before = completed_trials(project)
    start = time.time()
    rerun = subprocess.run(
        [sys.executable, "-u", "-c", search_code("none", 0, directory, rerun_limit)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = rerun.stdout.splitlines()
    started = [float(line.split()[1]) for line in lines if line.startswith("START")]
    ended = [float(line.split()[1]) for line in lines if line.startswith("FIT-DONE")]
    fit_seconds = ended[0] - started[0] if started and ended else float("nan")
    after = completed_trials(project)
    result = {
        "kill": f"{mode}:{n}",
        "limit": rerun_limit,
        "killed": killed,
        "completed_before": len(before),
        "rerun_exit": rerun.returncode,
        "rerun_fit_s": round(fit_seconds, 1),
        "over_s": round(fit_seconds - rerun_limit, 1),
        "process_s": round(time.time() - start, 1),
        "lost": sorted(before - after),
        "completed_after": len(after),
    }
    result["held"] = (
        rerun.returncode == 0 and fit_seconds <= rerun_limit + SLACK and not result["lost"]
    )
    if rerun.returncode != 0:
        result["error"] = (rerun.stderr.strip().splitlines() or ["?"])[-1][:160]
    return result


def kill_points(kills, seed):
    """`kills` (mode, n) pairs, the modes in turn, the moments drawn with `seed`."""
    rng = random.Random(seed)
    points = []
    for i in range(kills):
        mode = ("time", "json", "checkpoint")[i % 3]
        if mode == "time":
            points.append((mode, rng.randint(20, 300)))  # 2 to 30 s into the search
        elif mode == "json":
            points.append((mode, rng.randint(2, 14)))  # the n-th JSON write
        else:
            points.append((mode, rng.randint(1, 8)))  # the n-th checkpoint write
    return points


def table(results):
    """The Markdown table: one row per rerun limit."""
    rows = ["| fault | expected | observed | held |", "| --- | --- | --- | --- |"]
    for limit in sorted({r["limit"] for r in results}):
        mine = [r for r in results if r["limit"] == limit]
        held = sum(r["held"] for r in mine)
        worst = max((r["over_s"] for r in mine), default=0)
        lost = sum(len(r["lost"]) for r in mine)
        failed = "; ".join(f"{r['kill']}: {r.get('error', 'late')}" for r in mine if not r["held"])
        observed = f"{held}/{len(mine)} held; largest overshoot {worst:+.1f} s; lost trials {lost}"
        observed += f"; {failed}" if failed else ""
        expected = f"rerun `fit` within {limit:g} s + {SLACK:g}, no completed trial lost"
        rows.append(
            f"| SIGKILL x{len(mine)}, rerun limit {limit:g} s | {expected} | "
            f"{observed.replace('|', '/')} | {'yes' if held == len(mine) else 'no'} |"
        )
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILL points (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="draws the kill points")
    parser.add_argument(
        "--rerun-limits",
        default=RERUN_LIMITS,
        help=f"the reruns' time limits in seconds, comma-separated (default {RERUN_LIMITS})",
    )
    args = parser.parse_args()
    limits = [float(limit) for limit in args.rerun_limits.split(",")]
    results = []
    for mode, n in kill_points(args.kills, args.seed):
        for limit in limits:
            result = kill_once(mode, n, limit)
            print(json.dumps(result), flush=True)
            results.append(result)
    print()
    print(table(results))
    return 0 if all(r["held"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
