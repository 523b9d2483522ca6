#!/usr/bin/env python3
"""Mergeable statistics under real mpirun (launch/test runs this; docs/distributed.md).

20 batches of GPT token ids (seeded NumPy, written here) in three folders: all 20, the first 10
(A) and the last 10 (B). For each observer pair whose statistic does not depend on the order of the
batches (abs_max, avg, mse, emd activations, and hist and kl with a fixed --hist-range;
abs_max_channel_wise, mse_channel_wise weights), with
--reproducible at T = 2: one job over all 20 batches, job A at T = 2 × D = 2 and job B at T = 2 × D = 1
each with --save-statistics, then `shardquant merge A B`: every file of the merged output folder
byte-identical to the single job's, apart from provenance and the report (shardquant.json,
report.json, report.html: the report measures each job's own held-out batch).
Refusals, each a clean non-zero exit that says why, with no output folder: hist without
--hist-range (the halves' histogram ranges differ), a folder of another observer, a folder saved at another T, GPTQ at save
time (sequential), a folder that is not saved statistics.
Prints `N passed, N failed` last; exits non-zero on any failure.
"""
import os
import sys
import tempfile

import numpy  # noqa: F401  (the check's data; launch/test runs this with the export venv's Python)

from check_common import check, differing_files, run, summary

GPT = ["calibrate", "--model", "gpt", "--hidden", "96", "--heads", "12", "--layers", "2", "--ffn", "384", "--vocab", "256",
       "--seq", "32", "--batch-size", "4", "--reproducible", "--quiet", "--tp", "2"]


def first_line(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    return lines[0] if lines else result.stderr[-300:]


with tempfile.TemporaryDirectory() as folder:
    generator = numpy.random.default_rng(20261201)
    for name in ("all", "A", "B"):
        os.makedirs(os.path.join(folder, name))
    for index in range(20):
        batch = generator.integers(0, 256, size=(4, 32)).astype("<f4")
        numpy.save(os.path.join(folder, "all", f"b{index:02d}.npy"), batch)
        numpy.save(os.path.join(folder, "A" if index < 10 else "B", f"b{index:02d}.npy"), batch)

    pairs = [("abs_max", "abs_max_channel_wise", []), ("avg", "abs_max_channel_wise", []), ("mse", "mse_channel_wise", []),
             ("emd", "abs_max_channel_wise", []), ("hist", "abs_max_channel_wise", ["--hist-range", "-6,6"]),
             ("kl", "abs_max_channel_wise", ["--hist-range", "-6,6"])]
    for observer, weight, extra in pairs:
        flags = [*GPT, "--observer", observer, "--weight-observer", weight, *extra]
        tag = f"{observer}+{weight}"
        whole = run(2, [*flags, "--data", "all", "--steps", "20", "--out", f"whole-{tag}"], folder)
        half_a = run(4, [*flags, "--dp", "2", "--data", "A", "--steps", "10", "--save-statistics", f"saved-a-{tag}", "--out", f"a-{tag}"], folder)
        half_b = run(2, [*flags, "--data", "B", "--steps", "10", "--save-statistics", f"saved-b-{tag}", "--out", f"b-{tag}"], folder)
        if whole.returncode or half_a.returncode or half_b.returncode:
            check(False, f"{tag}: the jobs ran: {first_line(whole)} {first_line(half_a)} {first_line(half_b)}")
            continue
        merged = run(2, ["merge", f"saved-a-{tag}", f"saved-b-{tag}", "--out", f"merged-{tag}", "--quiet"], folder)
        if merged.returncode:
            check(False, f"{tag}: merge: {first_line(merged)}")
            continue
        different, count = differing_files(os.path.join(folder, f"whole-{tag}"), os.path.join(folder, f"merged-{tag}"))
        check(not different and count > 3,
              f"{tag}: merge of the halves (D = 2 and D = 1) = one job over all 20 batches: {count} files bit-identical"
              f"{'' if not different else f'; differ: {different}'}")

    # Refusals.
    hist = [*GPT, "--observer", "hist"]
    run(2, [*hist, "--data", "A", "--steps", "10", "--save-statistics", "saved-a-hist", "--out", "a-hist"], folder)
    run(2, [*hist, "--data", "B", "--steps", "10", "--save-statistics", "saved-b-hist", "--out", "b-hist"], folder)
    refused = run(2, ["merge", "saved-a-hist", "saved-b-hist", "--out", "merged-hist"], folder)
    check(refused.returncode != 0 and "ranges differ" in refused.stderr and not os.path.exists(os.path.join(folder, "merged-hist")),
          f"hist halves with different histogram ranges are refused: {first_line(refused)}")
    refused = run(2, ["merge", "saved-a-avg+abs_max_channel_wise", "saved-b-hist", "--out", "merged-mixed"], folder)
    check(refused.returncode != 0 and "cannot be merged with the first folder" in refused.stderr,
          f"folders of other observers are refused: {first_line(refused)}")
    run(1, [*[a if a != "2" or i != GPT.index("--tp") + 1 else "1" for i, a in enumerate(GPT)], "--observer", "avg",
            "--data", "B", "--steps", "10", "--save-statistics", "saved-t1", "--out", "t1"], folder)
    refused = run(2, ["merge", "saved-a-avg+abs_max_channel_wise", "saved-t1", "--out", "merged-t"], folder)
    check(refused.returncode != 0 and "saved at T = 1" in refused.stderr, f"a folder saved at another T is refused: {first_line(refused)}")
    refused = run(2, [*GPT, "--observer", "avg", "--gptq", "--data", "A", "--steps", "2", "--save-statistics", "saved-gptq", "--out", "gptq"], folder)
    check(refused.returncode != 0 and "GPTQ is sequential" in refused.stderr and not os.path.exists(os.path.join(folder, "saved-gptq")),
          f"GPTQ with --save-statistics is refused: {first_line(refused)}")
    refused = run(2, ["merge", "A", "saved-b-hist", "--out", "merged-bad"], folder)
    check(refused.returncode != 0 and "statistics.json" in refused.stderr, f"a folder that is not saved statistics is refused: {first_line(refused)}")

sys.exit(summary())
