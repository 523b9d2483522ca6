"""What the Python checks under real mpirun share (tools/check_resume.py, tools/check_merge.py):
counting checks, running launch/shardquant, and comparing output folders file by file."""
import filecmp
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "shardquant")
BINARY = os.path.abspath(os.environ.get("SHARDQUANT_BINARY", os.path.join(ROOT, ".build", "release", "shardquant")))
# Provenance and the report may differ between runs that computed the same model.
VOLATILE = {"shardquant.json", "report.json", "report.html"}
counts = {"passed": 0, "failed": 0}


def check(ok, what):
    counts["passed" if ok else "failed"] += 1
    print("ok  " if ok else "FAILED:", what, flush=True)


def run(ranks, arguments, cwd):
    """`launch/shardquant -np RANKS ARGUMENTS` in `cwd`, with no standard input."""
    return subprocess.run([LAUNCH, "-np", str(ranks), *arguments], capture_output=True, text=True, timeout=900, cwd=cwd,
                          stdin=subprocess.DEVNULL, env={**os.environ, "SHARDQUANT_BINARY": BINARY})


def differing_files(a, b):
    """The files of folders a and b (recursively, volatile ones left out) that differ or exist in
    one only, and how many a holds."""
    def listing(folder):
        return {os.path.relpath(os.path.join(base, name), folder) for base, _, files in os.walk(folder) for name in files
                if name not in VOLATILE}
    left, right = listing(a), listing(b)
    different = sorted(left ^ right)
    different += [r for r in sorted(left & right) if not filecmp.cmp(os.path.join(a, r), os.path.join(b, r), shallow=False)]
    return different, len(left)


def summary():
    """Prints `N passed, N failed`; the exit status."""
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0
