#!/usr/bin/env python3
"""Runs the same calibrations with two shardquant binaries and compares their output folders byte
for byte (a refactoring must not change any output).

Usage: compare_builds.py OLD_BINARY NEW_BINARY [WORK_FOLDER]

The runs cover what launch/test runs: the digits main job at T=1 and T=2 (with sensitivity and
--keep-float), GPT at T=2, T=3 and T=2·D=2 with several observer pairs and a config file, the
reproducible mode, affine (--asymmetric) and 4-bit weights, MobileNetV1, and the real MiniLM
checkpoint at T=2 (when launch/setup has cached it), and the plans --dry-run prints. Every file of every output folder must be
byte-identical, except the fields that record when and how long: report.json's `run.date` and
`run.version`, shardquant.json's date, and report.html (which shows the date); those files are
compared with the fields removed. Prints one line per run and `N identical, N different` last;
exits non-zero on any difference.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "shardquant")
GPT = ["--model", "gpt", "--hidden", "96", "--heads", "12", "--layers", "2", "--ffn", "384", "--vocab", "256", "--seq", "32",
       "--steps", "3", "--batch-size", "4"]
MINILM = os.environ.get("SHARDQUANT_MINILM", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                           "shardquant", "minilm", "model"))
RUNS = [
    ("digits-t1", 1, ["--model", "digits", "--config", "examples/configs/digits.json", "--steps", "4", "--batch-size", "64",
                      "--sensitivity", "--keep-float", "1"]),
    ("digits-t2", 2, ["--model", "digits", "--tp", "2", "--config", "examples/configs/digits.json", "--steps", "4",
                      "--batch-size", "64", "--sensitivity"]),
    ("digits-affine", 1, ["--model", "digits", "--observer", "mse", "--asymmetric", "--weight-bits", "4", "--steps", "3"]),
    ("gpt-t2-config", 2, [*GPT, "--tp", "2", "--config", "examples/configs/gpt.json"]),
    ("gpt-t3-kl", 3, [*GPT, "--tp", "3", "--observer", "kl", "--weight-observer", "abs_max_channel_wise"]),
    ("gpt-t2d2-avg", 4, [*GPT, "--tp", "2", "--dp", "2", "--observer", "avg", "--weight-observer", "mse_channel_wise"]),
    ("gpt-t2-reproducible", 2, [*GPT, "--tp", "2", "--observer", "hist", "--reproducible"]),
    ("gpt-t1-emd", 1, [*GPT, "--observer", "emd"]),
    ("mobilenet", 1, ["--model", "mobilenet_v1", "--scale", "0.25", "--image-size", "64", "--steps", "1", "--observer", "hist"]),
]
if os.path.exists(os.path.join(MINILM, "model.safetensors")):
    RUNS.append(("minilm-t2", 2, ["--model", "minilm", "--tp", "2", "--weights", MINILM, "--text",
                                  "examples/minilm/calibration.txt", "--batch-size", "8", "--steps", "2"]))

# Printed plans (--dry-run: each layer's observers, sharding and reducers) and refusals, compared
# as text with their exit codes.
DRY_RUNS = [
    ("gpt-t2-plan", [*GPT, "--tp", "2", "--config", "examples/configs/gpt.json", "--dry-run"]),
    ("gpt-t3-plan", [*GPT, "--tp", "3", "--dp", "2", "--observer", "kl", "--dry-run"]),
    ("digits-t2-plan", ["--model", "digits", "--tp", "2", "--config", "examples/configs/digits.json", "--dry-run"]),
    # Refusals: the same exit code and message (model flags, splits, data kinds, weights).
    ("unknown-model", ["--model", "resnet"]),
    ("other-model-flag", ["--model", "minilm", "--hidden", "99"]),
    ("image-size-for-gpt", ["--model", "gpt", "--image-size", "64"]),
    ("hidden-heads", ["--model", "gpt", "--hidden", "65", "--heads", "4"]),
    ("gpt-too-large", ["--model", "gpt", "--hidden", "60000", "--layers", "64"]),
    ("scale-range", ["--model", "mobilenet_v1", "--scale", "9"]),
    ("image-size-range", ["--model", "mobilenet_v1", "--image-size", "16"]),
    ("ffn-indivisible", ["--model", "gpt", "--ffn", "129", "--tp", "2", "--dry-run"]),
    ("digits-tp3", ["--model", "digits", "--tp", "3", "--dry-run"]),
    ("mobilenet-tp", ["--model", "mobilenet_v1", "--tp", "2", "--dry-run"]),
    ("reproducible-gpt", ["--model", "gpt", "--hidden", "64", "--heads", "4", "--reproducible"]),
    ("minilm-needs-text", ["--model", "minilm"]),
    ("text-for-gpt", ["--model", "gpt", "--text", "examples/minilm/calibration.txt"]),
    ("eval-text-for-digits", ["--model", "digits", "--eval-text", "examples/minilm/calibration.txt"]),
    ("folder-weights-for-gpt", ["--model", "gpt", "--weights", "examples"]),
    ("wrong-weights-for-digits", ["--model", "digits", "--weights", "data/digits/classifier.safetensors", "--tp", "2", "--dry-run"]),
    ("minilm-missing-folder", ["--model", "minilm", "--weights", "/nonexistent-checkpoint", "--text", "examples/minilm/calibration.txt"]),
]


def printed(binary, arguments):
    result = subprocess.run([os.path.abspath(binary), "calibrate", *arguments, "--out", "unused-plan-folder"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    return result.returncode, result.stdout, result.stderr


def run(binary, ranks, arguments, out):
    command = [LAUNCH, "-np", str(ranks), "calibrate", *arguments, "--quiet", "--out", out]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT,
                            env={**os.environ, "SHARDQUANT_BINARY": os.path.abspath(binary)})
    if result.returncode != 0:
        raise SystemExit(f"{binary} {' '.join(arguments)} failed ({result.returncode}): {result.stderr[-800:]}")


def without_volatile(path, data):
    """The file's bytes with the fields that record the date, version or timings removed."""
    name = os.path.basename(path)
    if name in ("report.json", "shardquant.json"):
        value = json.loads(data)
        if isinstance(value.get("run"), dict):
            value["run"].pop("date", None)
            value["run"].pop("version", None)
            value["run"].pop("command", None)
        for key in ("date", "created", "version", "seconds", "timings", "command"):
            value.pop(key, None)
        return json.dumps(value, sort_keys=True).encode()
    if name == "report.html":
        lines = data.decode().splitlines()
        return "\n".join(line for line in lines if "shardquant calibrate" not in line and "<p class=\"run\"" not in line).encode()
    return data


def files(folder):
    result = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            result[os.path.relpath(path, folder)] = open(path, "rb").read()
    return result


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    identical = different = 0
    with tempfile.TemporaryDirectory(dir=sys.argv[3] if len(sys.argv) > 3 else None) as work:
        for name, ranks, arguments in RUNS:
            before, after = os.path.join(work, name + "-old"), os.path.join(work, name + "-new")
            run(old, ranks, arguments, before)
            run(new, ranks, arguments, after)
            one, two = files(before), files(after)
            problems = sorted(set(one) ^ set(two))
            problems += [path for path in sorted(set(one) & set(two))
                         if without_volatile(path, one[path]) != without_volatile(path, two[path])]
            if problems:
                different += 1
                print(f"DIFFERENT {name}: {', '.join(problems)}", flush=True)
            else:
                identical += 1
                print(f"identical {name}: {len(one)} files", flush=True)
    for name, arguments in DRY_RUNS:
        if printed(old, arguments) == printed(new, arguments):
            identical += 1
            print(f"identical {name}: printed plan", flush=True)
        else:
            different += 1
            print(f"DIFFERENT {name}: printed plan", flush=True)
    print(f"{identical} identical, {different} different")
    sys.exit(1 if different else 0)


main()
