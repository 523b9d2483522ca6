#!/usr/bin/env python3
"""Multi-rank checks under real mpirun (launch/test runs this after `swift test`).

First `mpi_checks` (Tests/MPIChecks) under mpirun with 1 to 4 ranks: statistic-level invariance of
every observer, and the calibration job (the library) at every grid point for every observer pair.
Then, for the command line itself, for every grid point (T, D) of DESIGN.md §8 it runs
`launch/shardquant -np T·D calibrate --model gpt --tp T --dp D` (12 heads, FFN 384, so T = 3
divides) for two observer pairs (abs_max and hist; the full matrix is mpi_checks'), and checks that the
`layers` of scales.json agree with the single-process run within DESIGN.md §3's noise bounds
(max/avg 1e-5 relative, hist/kl within one bin, mse/emd the same or the neighbouring candidate;
weights bit-identical). With --reproducible the layers and the converted model's output on a fixed input must be
bit-identical at every grid point (and for MobileNetV1 at D = 1 and 2). Then it injects a failure on one rank and checks that every rank exits
non-zero, that stderr names the failing rank, and that no output folder exists; then kills one
rank's process outright (no agreement sees that) and checks the same; and that ranks started with
different arguments, config files or input files (same path, other contents) refuse to run.
Prints `N passed, N failed` last; exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "shardquant")
GPT = ["--model", "gpt", "--hidden", "96", "--heads", "12", "--layers", "2", "--ffn", "384", "--vocab", "256", "--seq", "32"]
GRID = [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (2, 2)]
# The command line's grid runs these two pairs; mpi_checks runs all six through the library job.
CLI_PAIRS = [("abs_max", "abs_max_channel_wise"), ("hist", "abs_max_channel_wise")]
BOUND = {"abs_max": 1e-5, "avg": 1e-5, "hist": 2 / 2048, "kl": 2 / 2048, "mse": 0.025, "emd": 0.025}
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAILED:", what, flush=True)


def calibrate(tp, dp, observer, weight, out, extra=()):
    command = [LAUNCH, "-np", str(tp * dp), "calibrate", *GPT, "--tp", str(tp), "--dp", str(dp), "--steps", "3",
               "--batch-size", "4", "--observer", observer, "--weight-observer", weight, "--quiet", "--out", out, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "SHARDQUANT_BINARY": BINARY})


BINARY = os.path.abspath(os.environ.get("SHARDQUANT_BINARY", os.path.join(ROOT, ".build", "release", "shardquant")))
CHECKS = os.path.join(os.path.dirname(BINARY), "mpi_checks")
with tempfile.TemporaryDirectory() as folder:
    # Statistic-level invariance under real MPI: every observer, 1 to 4 ranks (Tests/MPIChecks).
    for ranks in (1, 2, 3, 4):
        run = subprocess.run([LAUNCH, "-np", str(ranks)], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "SHARDQUANT_BINARY": CHECKS})
        lines = run.stdout.strip().splitlines()
        check(run.returncode == 0 and lines and lines[-1].endswith(" 0 failed"), f"mpi_checks on {ranks} ranks: {run.stdout[-500:]} {run.stderr[-300:]}")
        print(f"mpi_checks on {ranks} ranks: {lines[-1] if lines else 'no output'}", flush=True)

    # A data-parallel rank with an empty share (batch of 1 over 2 ranks) still completes.
    out = os.path.join(folder, "empty-share")
    run = subprocess.run([LAUNCH, "-np", "2", "calibrate", *GPT, "--dp", "2", "--batch-size", "1", "--steps", "2",
                          "--observer", "hist", "--quiet", "--out", out], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "SHARDQUANT_BINARY": BINARY})
    check(run.returncode == 0 and os.path.exists(os.path.join(out, "scales.json")), f"empty share: {run.stderr[-300:]}")

    for observer, weight in CLI_PAIRS:
        reference = None
        for tp, dp in GRID:
            out = os.path.join(folder, f"{observer}-{tp}-{dp}")
            run = calibrate(tp, dp, observer, weight, out)
            check(run.returncode == 0, f"{observer} T={tp} D={dp} exit {run.returncode}: {run.stderr[-500:]}")
            if run.returncode != 0:
                continue
            scales = json.load(open(os.path.join(out, "scales.json")))
            check(scales["tensor_parallel"] == tp and scales["data_parallel"] == dp, f"{observer} T={tp} D={dp} header")
            layers = scales["layers"]
            # PaddleNLP per-rank files: column weights split in T parts, everything else replicated.
            whole_w = json.load(open(os.path.join(out, "weight_scales.json")))
            whole_a = json.load(open(os.path.join(out, "act_scales.json")))
            for r in range(tp):
                rank_w = json.load(open(os.path.join(out, f"weight_scales_{r}.json")))
                rank_a = json.load(open(os.path.join(out, f"act_scales_{r}.json")))
                ok = rank_a == whole_a and set(rank_w) == set(whole_w)
                for key, values in whole_w.items():
                    column = layers[key[: -len(".weight_quanter")]]["type"] == "ColumnParallelLinear"
                    width = len(values) // tp
                    ok = ok and rank_w[key] == (values[r * width:(r + 1) * width] if column else values)
                check(ok, f"{observer} T={tp} D={dp}: PaddleNLP rank {r} files follow split_weights.py")
            if reference is None:
                reference = layers
                continue
            check(set(layers) == set(reference), f"{observer} T={tp} D={dp}: layer paths differ")
            for path, entry in reference.items():
                other = layers.get(path, {})
                check(other.get("weight") == entry["weight"], f"{observer} T={tp} D={dp} {path}: weight thresholds differ")
                a, e = other["activation"]["threshold"][0], entry["activation"]["threshold"][0]
                check(abs(a - e) <= BOUND[observer] * e + 1e-12, f"{observer} T={tp} D={dp} {path}: {a} vs {e}")
        print(f"{observer}: grid done", flush=True)

    # Reproducible mode: bit-identical `layers` and converted outputs at every grid point.
    for observer, weight in CLI_PAIRS:
        reference = None
        for tp, dp in GRID:
            out = os.path.join(folder, f"r-{observer}-{tp}-{dp}")
            probe = out + ".npy"
            run = calibrate(tp, dp, observer, weight, out, ["--reproducible", "--probe-output", probe])
            check(run.returncode == 0, f"reproducible {observer} T={tp} D={dp} exit {run.returncode}: {run.stderr[-500:]}")
            if run.returncode != 0:
                continue
            result = (json.load(open(os.path.join(out, "scales.json")))["layers"], open(probe, "rb").read())
            if reference is None:
                reference = result
                continue
            check(result[0] == reference[0], f"reproducible {observer} T={tp} D={dp}: scales.json layers differ")
            check(result[1] == reference[1], f"reproducible {observer} T={tp} D={dp}: converted output differs")
        print(f"reproducible {observer}: grid done", flush=True)

    # MobileNetV1 (no tensor-parallel layers) split over data-parallel ranks, reproducible.
    outputs = []
    for dp in (1, 2):
        out = os.path.join(folder, f"mobilenet-{dp}")
        command = [LAUNCH, "-np", str(dp), "calibrate", "--model", "mobilenet_v1", "--scale", "0.25", "--image-size", "64",
                   "--steps", "2", "--batch-size", "4", "--dp", str(dp), "--observer", "hist", "--reproducible", "--quiet",
                   "--out", out, "--probe-output", out + ".npy"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "SHARDQUANT_BINARY": BINARY})
        check(run.returncode == 0, f"mobilenet D={dp}: {run.stderr[-300:]}")
        if run.returncode == 0:
            outputs.append((json.load(open(os.path.join(out, "scales.json")))["layers"], open(out + ".npy", "rb").read()))
    check(len(outputs) == 2 and outputs[0] == outputs[1], "mobilenet_v1 reproducible at D=1 and D=2: identical")

    out = os.path.join(folder, "failed")
    run = calibrate(2, 1, "avg", "abs_max_channel_wise", out, ["--inject-failure", "1:2"])
    check(run.returncode != 0, "a failing rank ends the job with a non-zero exit")
    check("rank 1: injected failure at calibration step 2" in run.stderr, f"stderr names the rank: {run.stderr[-300:]}")
    check(not os.path.exists(out), "no output folder after a failure")

    check(not [n for n in os.listdir(folder) if n.startswith(".failed.")], "no staging folder left after a failure")

    # NaN/±inf in rank 1's share of the first batch (digits, D = 2): by default every rank stops,
    # rank 0 names rank 1, the layer and the batch, nothing is written; with --nonfinite skip the
    # values are left out identically at D = 1 and D = 2 (fc1 sees the data itself: the same
    # threshold; deeper layers within the default mode's float summation order, 1e-5).
    # (Written without NumPy: seeded pixels in [0, 1] as a float32 .npy, version 1.0.)
    import random
    import struct
    generator = random.Random(0)
    pixels = [generator.randrange(17) / 16 for _ in range(128 * 64)]
    pixels[40 * 64 + 5], pixels[50 * 64], pixels[60 * 64 + 63] = float("nan"), float("inf"), float("-inf")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (128, 64), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    dirty = os.path.join(folder, "dirty.npy")
    with open(dirty, "wb") as handle:
        handle.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("ascii") + struct.pack(f"<{len(pixels)}f", *pixels))
    def digits(ranks, out, extra=()):
        return subprocess.run([LAUNCH, "-np", str(ranks), "calibrate", "--model", "digits", "--dp", str(ranks), "--data", dirty,
                               "--batch-size", "64", "--observer", "hist", "--quiet", "--out", out, *extra],
                              capture_output=True, text=True, timeout=600, env={**os.environ, "SHARDQUANT_BINARY": BINARY})
    out = os.path.join(folder, "nonfinite-stop")
    run = digits(2, out)
    check(run.returncode != 0, "non-finite data stops every rank with a non-zero exit")
    check("rank 1: layer 'fc1': 3 NaN or infinite values reached the hist observer in calibration batch 1" in run.stderr,
          f"stderr names the rank, layer and batch: {run.stderr[-400:]}")
    check(not os.path.exists(out), "no output folder after non-finite data")
    skipped = []
    for ranks in (1, 2):
        out = os.path.join(folder, f"nonfinite-skip-{ranks}")
        run = digits(ranks, out, ["--nonfinite", "skip"])
        check(run.returncode == 0, f"--nonfinite skip at D={ranks}: {run.stderr[-300:]}")
        if run.returncode == 0:
            report = json.load(open(os.path.join(out, "report.json")))
            check(report.get("non_finite_skipped", {}).get("fc1") == 3, f"D={ranks}: the report counts the 3 skipped values: {report.get('non_finite_skipped')}")
            skipped.append(json.load(open(os.path.join(out, "scales.json")))["layers"])
    def thresholds(layers):
        return {path: (layer["activation"] or {}).get("threshold", []) + (layer["weight"] or {}).get("threshold", []) for path, layer in layers.items()}
    if len(skipped) == 2:
        one, two = thresholds(skipped[0]), thresholds(skipped[1])
        check(skipped[0]["fc1"]["activation"] == skipped[1]["fc1"]["activation"], "--nonfinite skip: fc1's threshold identical at D=1 and D=2")
        check(one.keys() == two.keys() and all(abs(a - b) <= 1e-5 * abs(a) for path in one for a, b in zip(one[path], two[path])),
              "--nonfinite skip: every threshold within 1e-5 at D=1 and D=2")
    else:
        check(False, "--nonfinite skip ran at D=1 and D=2")

    # The report does not depend on T: digits at T = 1 and T = 2 (fc1 column-, fc2 row-parallel).
    # fc1 reads the data itself: identical histogram and clipping. Deeper layers' inputs differ in
    # the last bits (GEMM blocking, all-reduce order), so a value may cross a bin edge: their
    # histograms agree within a few counts, and ranges, SQNR and abs-max within 1e-5.
    reports = []
    for tp in (1, 2):
        out = os.path.join(folder, f"report-t{tp}")
        run = subprocess.run([LAUNCH, "-np", str(tp), "calibrate", "--model", "digits", "--tp", str(tp), "--steps", "4",
                              "--batch-size", "32", "--sensitivity", "--quiet", "--out", out],
                             capture_output=True, text=True, timeout=600, env={**os.environ, "SHARDQUANT_BINARY": BINARY})
        check(run.returncode == 0, f"digits report at T={tp}: {run.stderr[-300:]}")
        if run.returncode == 0:
            reports.append(json.load(open(os.path.join(out, "report.json"))))
    if len(reports) == 2:
        one = {layer["path"]: layer for layer in reports[0]["layers"]}
        two = {layer["path"]: layer for layer in reports[1]["layers"]}
        close = lambda a, b: (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-5 * abs(a))
        check(one.keys() == two.keys() and one["fc1"]["histogram"] == two["fc1"]["histogram"]
              and one["fc1"]["clipped_fraction"] == two["fc1"]["clipped_fraction"], "report at T=1 and T=2: fc1's histogram and clipping identical")
        def near(a, b):
            counts = sum(a["counts"])
            return (sum(b["counts"]) == counts and sum(abs(x - y) for x, y in zip(a["counts"], b["counts"])) <= 2 + counts // 10000
                    and close(a["low"], b["low"]) and close(a["high"], b["high"]))
        check(all(near(one[p]["histogram"], two[p]["histogram"]) for p in one), "report at T=1 and T=2: histograms within a few counts")
        check(all(close(one[p]["sqnr_db"], two[p]["sqnr_db"]) and close(one[p]["abs_max"], two[p]["abs_max"]) for p in one),
              "report at T=1 and T=2: layer SQNR and abs-max within 1e-5")
        check(reports[0]["metrics"]["quantized_accuracy"] == reports[1]["metrics"]["quantized_accuracy"]
              and close(reports[0]["metrics"]["output_sqnr_db"], reports[1]["metrics"]["output_sqnr_db"]),
              f"report at T=1 and T=2: same accuracy, output SQNR within 1e-5: {reports[0]['metrics']} {reports[1]['metrics']}")
        check([e["path"] for e in reports[0]["sensitivity"]["ranking"]] == [e["path"] for e in reports[1]["sensitivity"]["ranking"]],
              "report at T=1 and T=2: the same sensitivity ranking")

    # A rank killed outright (no agreement can see it): the launcher ends the job; no rank is left
    # running, stderr names the rank, nothing is written. (Generous bound: 600 s.)
    out = os.path.join(folder, "killed")
    run = calibrate(2, 1, "avg", "abs_max_channel_wise", out, ["--inject-failure", "1:2:kill"])
    check(run.returncode != 0, f"a killed rank ends the job with a non-zero exit ({run.returncode})")
    check("process rank 1" in run.stderr and "signal 9" in run.stderr, f"stderr names the killed rank: {run.stderr[-300:]}")
    check(not os.path.exists(out) and not [n for n in os.listdir(folder) if n.startswith(".killed.")], "no output or staging folder after a killed rank")
    left = subprocess.run(["pgrep", "-f", out], capture_output=True, text=True).stdout.split()
    check(not left, f"no rank of the killed job is still running: {left}")

    # Ranks started with different arguments refuse to run (a fingerprint gathered at start).
    out = os.path.join(folder, "mismatched")
    appfile = os.path.join(folder, "appfile")
    common = ["calibrate", *GPT, "--tp", "2", "--observer", "avg", "--quiet", "--out", out]
    with open(appfile, "w") as f:
        f.write(" ".join(["-np", "1", BINARY, *common, "--steps", "2"]) + "\n")
        f.write(" ".join(["-np", "1", BINARY, *common, "--steps", "3"]) + "\n")
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    run = subprocess.run(["mpirun", *root, "--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none",
                          "--app", appfile], capture_output=True, text=True, timeout=600)
    check(run.returncode != 0 and "rank(s) 1 were started with other arguments" in run.stderr,
          f"mismatched ranks refuse: {run.stderr[-300:]}")
    check(not os.path.exists(out), "no output folder after mismatched ranks")

    # The same arguments but a --config file whose content differs between the ranks (each rank
    # runs in its own working directory with its own quant.json): refused at start as well.
    for index, observer in enumerate(["avg", "kl"]):
        os.makedirs(os.path.join(folder, f"host{index}"))
        with open(os.path.join(folder, f"host{index}", "quant.json"), "w") as f:
            f.write(json.dumps({"observer": observer}))
    with open(appfile, "w") as f:
        for index in range(2):
            f.write(" ".join(["-np", "1", "-wdir", os.path.join(folder, f"host{index}"), BINARY, "calibrate", *GPT, "--tp", "2",
                              "--config", "quant.json", "--quiet", "--out", out]) + "\n")
    run = subprocess.run(["mpirun", *root, "--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none",
                          "--app", appfile], capture_output=True, text=True, timeout=600)
    check(run.returncode != 0 and "rank(s) 1 were started with other arguments, another --config file" in run.stderr,
          f"ranks with different config files refuse: {run.stderr[-300:]}")
    check(not os.path.exists(out), "no output folder after different config files")

    # The same arguments, but the calibration text at the same relative path holds other lines on
    # rank 1 (as on two hosts with their own copies): refused at start, naming the file.
    for index in range(2):
        with open(os.path.join(folder, f"host{index}", "calibration.txt"), "w") as f:
            f.write("The same first line.\n" + ("A second line.\n" if index == 0 else "Another second line.\n"))
    with open(appfile, "w") as f:
        for index in range(2):
            f.write(" ".join(["-np", "1", "-wdir", os.path.join(folder, f"host{index}"), BINARY, "calibrate", "--model", "llama",
                              "--tp", "2", "--text", "calibration.txt", "--quiet", "--out", out]) + "\n")
    run = subprocess.run(["mpirun", *root, "--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none",
                          "--app", appfile], capture_output=True, text=True, timeout=600)
    check(run.returncode != 0 and "rank(s) 1 were started with" in run.stderr and "(different: --text calibration.txt)" in run.stderr,
          f"ranks whose --text files differ refuse, naming the file: {run.stderr[-300:]}")
    check(not os.path.exists(out), "no output folder after different --text files")

# Output safety: a full disk, a file-size limit and an output path under a file are clean errors
# that leave nothing behind (single process; the same code path writes for every rank count).
import resource
import signal
SMALL = [BINARY, "calibrate", "--model", "mobilenet_v1", "--scale", "0.25", "--image-size", "64", "--steps", "1", "--quiet"]


def leftovers(parent):
    return [n for n in os.listdir(parent) if n != "marker"]


with tempfile.TemporaryDirectory() as folder:
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    parent = os.path.join(folder, "limited")
    os.makedirs(parent)
    run = subprocess.run([*SMALL, "--out", os.path.join(parent, "out")], capture_output=True, text=True, timeout=600, preexec_fn=limited)
    check(run.returncode != 0 and "cannot be written" in run.stderr and "File too large" in run.stderr,
          f"a file-size limit is a clean error: {run.stderr.strip()[-200:]}")
    check(not leftovers(parent), f"nothing left after the file-size limit: {leftovers(parent)}")

    parent = os.path.join(folder, "full")
    os.makedirs(parent)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", parent], capture_output=True, text=True).returncode == 0
    except OSError:
        mounted = False
    if mounted:
        try:
            run = subprocess.run([*SMALL, "--out", os.path.join(parent, "out")], capture_output=True, text=True, timeout=600)
            check(run.returncode != 0 and "No space left on device" in run.stderr, f"a full disk is a clean error: {run.stderr.strip()[-200:]}")
            check(not leftovers(parent), f"nothing left on the full disk: {leftovers(parent)}")
            # Under mpirun the failed write is agreed: every rank exits, none waits in a collective.
            run = calibrate(2, 1, "avg", "abs_max_channel_wise", os.path.join(parent, "out"))
            check(run.returncode != 0 and "rank 0: " in run.stderr and "No space left on device" in run.stderr,
                  f"a full disk at T=2 ends every rank with the reason: {run.stderr.strip()[:200]}")
            check(not leftovers(parent), f"nothing left on the full disk at T=2: {leftovers(parent)}")
        finally:
            subprocess.run(["umount", parent])
    else:
        print("note: full-disk case not run: mounting a small tmpfs was refused here (or no mount command) (the file-size-limit case covers the same path)")

    blocker = os.path.join(folder, "a_file")
    open(blocker, "w").write("not a folder")
    run = subprocess.run([*SMALL, "--out", os.path.join(blocker, "out")], capture_output=True, text=True, timeout=600)
    check(run.returncode != 0 and "cannot create" in run.stderr and blocker in run.stderr,
          f"an output path under a file is a clean error naming it: {run.stderr.strip()[-200:]}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
