#!/usr/bin/env python3
"""Checkpointed calibration under real mpirun (launch/test runs this; docs/distributed.md).

For every activation observer (abs_max, avg, hist, kl, mse, emd) at T = 1 and T = 2, on the GPT
preset with --reproducible and 20 steps, --checkpoint-every 2:
  * an uninterrupted run;
  * the same run with one rank killed by SIGKILL at a random step (the hidden --inject-failure
    RANK:STEP:kill, which the job fingerprint leaves out), then the same command line with --resume:
    every file of the output folder (scales.json, model.safetensors, the shards, model.onnx, the
    PaddleNLP files, the compressed-tensors config) byte-identical to the uninterrupted run's, apart
    from provenance and timings (shardquant.json, report.json, report.html), and the checkpoint
    folder gone afterwards;
  * the checkpoint files themselves: step 8 of a run killed once equals step 8 of a run killed,
    resumed and killed again.
Then the refusals, each a clean non-zero exit naming the file or folder, with no output folder:
  * a checkpoint truncated, or altered by one byte, on one rank;
  * --resume with other arguments (another observer), and at another T;
  * a new run (no --resume) over an existing checkpoint; with --overwrite it starts afresh;
and --resume with no checkpoint yet starts afresh, and the output folder's stale-staging cleanup
leaves the checkpoint alone. SmolLM2 (T = 2, w4a16 group 32, so model.gguf is written) is killed from outside (kill -9 of one rank's
process while it calibrates, at a random moment) and resumed: scales.json `layers`, model.gguf and
model.safetensors identical to an uninterrupted run. SmolLM2 with GPTQ (w4a16-gptq, T = 2), killed from
outside once block 5 is saved and resumed (with rank 1's last block removed first: the ranks resume
from the blocks both hold), and killed at step 3 and resumed (every block restored):
the output folder identical to an uninterrupted run's; a truncated GPTQ block file is refused by name.
Prints `N passed, N failed` last; exits non-zero on any failure.
"""
import filecmp
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from check_common import BINARY, LAUNCH, ROOT, check, differing_files, run, summary

GPT = ["calibrate", "--model", "gpt", "--hidden", "96", "--heads", "12", "--layers", "2", "--ffn", "384", "--vocab", "256",
       "--seq", "32", "--batch-size", "4", "--steps", "20", "--reproducible", "--quiet", "--checkpoint-every", "2"]
random.seed(int(os.environ.get("SHARDQUANT_RESUME_SEED", "20261201")))


def killed_from_outside(arguments, out, folder, ready, delay=0.0):
    """Starts `launch/shardquant -np 2 ARGUMENTS --out OUT`, waits until `ready()` (or the job ends),
    sleeps `delay` s, kills one of its rank processes with SIGKILL (not mpirun, whose command line
    holds the same words) and waits for the job. Returns (killed pid or None, exit status)."""
    process = subprocess.Popen([LAUNCH, "-np", "2", *arguments, "--out", out], cwd=folder, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "SHARDQUANT_BINARY": BINARY})
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.02)
    time.sleep(delay)
    candidates = subprocess.run(["pgrep", "-f", f"calibrate.*--out {out}"], capture_output=True, text=True).stdout.split()
    ranks = [pid for pid in candidates
             if open(f"/proc/{pid}/comm").read().strip() == os.path.basename(BINARY)[:15]] if candidates else []
    victim = random.choice(ranks) if ranks else None
    if victim:
        os.kill(int(victim), signal.SIGKILL)
    process.communicate(timeout=600)
    return victim, process.returncode


with tempfile.TemporaryDirectory() as folder:
    for tp in (1, 2):
        for observer in ("abs_max", "avg", "hist", "kl", "mse", "emd"):
            arguments = [*GPT, "--observer", observer, "--tp", str(tp)]
            whole = run(tp, [*arguments, "--out", "whole"], os.path.join(folder))
            if whole.returncode != 0:
                check(False, f"T = {tp} {observer}: uninterrupted run: {whole.stderr[-400:]}")
                continue
            os.rename(os.path.join(folder, "whole"), os.path.join(folder, f"whole-{observer}-{tp}"))
            rank, step = random.randrange(tp), random.randint(3, 19)
            out = f"resumed-{observer}-{tp}"
            killed = run(tp, [*arguments, "--out", out, "--inject-failure", f"{rank}:{step}:kill"], folder)
            checkpoint = os.path.join(folder, f".{out}.checkpoint")
            saved = sorted(os.listdir(checkpoint)) if os.path.isdir(checkpoint) else []
            expected = (step - 1) // 2 * 2
            check(killed.returncode != 0 and not os.path.exists(os.path.join(folder, out))
                  and (expected == 0 or f"rank-{rank}.step-{expected}.safetensors" in saved),
                  f"T = {tp} {observer}: rank {rank} killed at step {step}: exit {killed.returncode}, checkpoint {saved}")
            resumed = run(tp, [*arguments, "--out", out, "--resume"], folder)
            if resumed.returncode != 0:
                check(False, f"T = {tp} {observer}: --resume after step {expected}: {resumed.stderr[-400:]}")
                continue
            different, count = differing_files(os.path.join(folder, f"whole-{observer}-{tp}"), os.path.join(folder, out))
            check(not different and count > 3 and not os.path.exists(checkpoint),
                  f"T = {tp} {observer}: killed at step {step} (rank {rank}), resumed after step {expected}: {count} files "
                  f"bit-identical to the uninterrupted run{'' if not different else f'; differ: {different}'}; checkpoint "
                  f"{'still there' if os.path.exists(checkpoint) else 'removed'}")

    # The checkpoints themselves: a run killed at step 9 (holding step 8), against a run killed at
    # step 5, resumed, and killed again at step 9: the same step-8 files on both ranks, byte for byte.
    arguments = [*GPT, "--observer", "avg", "--tp", "2"]
    # (The same --out for both: it is part of the job's fingerprint.)
    run(2, [*arguments, "--out", "twice", "--inject-failure", "1:9:kill"], folder)
    shutil.move(os.path.join(folder, ".twice.checkpoint"), os.path.join(folder, "straight.checkpoint"))
    run(2, [*arguments, "--out", "twice", "--inject-failure", "0:5:kill"], folder)
    run(2, [*arguments, "--out", "twice", "--resume", "--inject-failure", "1:9:kill"], folder)
    names = [f"rank-{r}.step-8.{kind}" for r in (0, 1) for kind in ("safetensors", "json")]
    same = [os.path.exists(os.path.join(folder, ".twice.checkpoint", n)) and os.path.exists(os.path.join(folder, "straight.checkpoint", n))
            and filecmp.cmp(os.path.join(folder, ".twice.checkpoint", n), os.path.join(folder, "straight.checkpoint", n), shallow=False)
            for n in names]
    check(all(same), f"the step-8 checkpoint of a run killed and resumed equals that of a run killed once: {dict(zip(names, same))}")

    # Refusals. A run killed at step 9 holds step 8 on both ranks.
    arguments = [*GPT, "--observer", "hist", "--tp", "2"]
    out = "refused"
    checkpoint = os.path.join(folder, f".{out}.checkpoint")

    def killed_run():
        shutil.rmtree(checkpoint, ignore_errors=True)
        run(2, [*arguments, "--out", out, "--inject-failure", "1:9:kill"], folder)
        return os.path.join(checkpoint, "rank-1.step-8.safetensors")

    statistics = killed_run()
    with open(statistics, "r+b") as f:
        f.truncate(os.path.getsize(statistics) - 100)
    refused = run(2, [*arguments, "--out", out, "--resume"], folder)
    check(refused.returncode != 0 and "rank-1.step-8.safetensors" in refused.stderr and "truncated" in refused.stderr
          and not os.path.exists(os.path.join(folder, out)),
          f"a truncated checkpoint on rank 1 is refused by name: {refused.stderr.strip().splitlines()[:1]}")
    statistics = killed_run()
    with open(statistics, "r+b") as f:
        f.seek(os.path.getsize(statistics) - 3)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x10]))
    refused = run(2, [*arguments, "--out", out, "--resume"], folder)
    check(refused.returncode != 0 and "rank-1.step-8.safetensors" in refused.stderr and "altered" in refused.stderr,
          f"a checkpoint altered by one byte on rank 1 is refused by name: {refused.stderr.strip().splitlines()[:1]}")
    killed_run()
    other = [*GPT, "--observer", "kl", "--tp", "2"]
    refused = run(2, [*other, "--out", out, "--resume"], folder)
    check(refused.returncode != 0 and "belongs to another job" in refused.stderr,
          f"--resume of another job's checkpoint is refused: {refused.stderr.strip().splitlines()[:1]}")
    refused = run(1, [*GPT, "--observer", "hist", "--tp", "1", "--out", out, "--resume"], folder)
    check(refused.returncode != 0 and "belongs to another job" in refused.stderr and "tensor parallel 2, this run 1" in refused.stderr,
          f"--resume at another T is refused, naming T: {refused.stderr.strip().splitlines()[:1]}")
    refused = run(2, [*arguments, "--out", out], folder)
    check(refused.returncode != 0 and "holds the checkpoint of an interrupted run" in refused.stderr and os.path.isdir(checkpoint),
          f"a new run over a checkpoint is refused and leaves it: {refused.stderr.strip().splitlines()[:1]}")
    # A stale staging folder of a killed export beside it: the next run removes that, not the checkpoint.
    os.makedirs(os.path.join(folder, f".{out}.partial-999999"))
    fresh = run(2, [*arguments, "--out", out, "--overwrite"], folder)
    different, _ = differing_files(os.path.join(folder, "whole-hist-2"), os.path.join(folder, out)) if fresh.returncode == 0 else (["run failed"], 0)
    check(fresh.returncode == 0 and not different and not os.path.exists(checkpoint),
          f"--overwrite over a checkpoint starts afresh and equals the uninterrupted run: {fresh.stderr[-300:]} {different}")
    killed_run()
    os.makedirs(os.path.join(folder, f".{out}.partial-999998"))
    resumed = run(2, [*arguments, "--out", out, "--resume", "--overwrite"], folder)
    check(resumed.returncode == 0 and not os.path.exists(os.path.join(folder, f".{out}.partial-999998")),
          f"the stale-staging cleanup removes a killed export's folder and --resume still finds the checkpoint: {resumed.stderr[-300:]}")
    shutil.rmtree(os.path.join(folder, out))
    afresh = run(2, [*arguments, "--out", out, "--resume"], folder)
    different, _ = differing_files(os.path.join(folder, "whole-hist-2"), os.path.join(folder, out)) if afresh.returncode == 0 else (["run failed"], 0)
    check(afresh.returncode == 0 and not different, f"--resume with no checkpoint starts afresh: {afresh.stderr[-300:]} {different}")

    # SmolLM2, killed from outside while it calibrates, then resumed.
    checkpoint_file = os.path.join(os.environ.get("SHARDQUANT_SMOLLM2", os.path.expanduser("~/.cache/shardquant/smollm2")),
                                   "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(checkpoint_file):
        check(False, f"no SmolLM2 checkpoint at {checkpoint_file} (launch/setup fetches it)")
    else:
        llama = ["calibrate", "--model", "llama", "--text", os.path.join(ROOT, "examples", "llama", "GPL-2.txt"), "--seq", "32",
                 "--batch-size", "2", "--steps", "8", "--scheme", "w4a16", "--group-size", "32",
                 "--tp", "2", "--reproducible", "--quiet", "--checkpoint-every", "2"]
        whole = run(2, [*llama, "--out", "llama-whole"], folder)
        check(whole.returncode == 0, f"SmolLM2 uninterrupted: {whole.stderr[-300:]}")
        out = "llama-resumed"
        checkpoint = os.path.join(folder, f".{out}.checkpoint")
        # Wait for a first checkpoint, then kill one rank at a random moment of the steps after it.
        victim, status = killed_from_outside(
            llama, out, folder, lambda: os.path.isdir(checkpoint) and any(n.endswith(".json") for n in os.listdir(checkpoint)),
            delay=random.uniform(0, 1.5))
        saved = sorted(n for n in os.listdir(checkpoint) if n.endswith(".json")) if os.path.isdir(checkpoint) else []
        check(victim is not None and status != 0 and saved and not os.path.exists(os.path.join(folder, out)),
              f"SmolLM2: one rank killed with kill -9 during calibration: exit {status}, checkpoint records {saved}")
        resumed = run(2, [*llama, "--out", out, "--resume"], folder)
        if resumed.returncode != 0:
            check(False, f"SmolLM2 --resume: {resumed.stderr[-400:]}")
        else:
            different, count = differing_files(os.path.join(folder, "llama-whole"), os.path.join(folder, out))
            check(not different and os.path.exists(os.path.join(folder, out, "model.gguf")),
                  f"SmolLM2 killed and resumed: {count} files (scales.json, model.gguf, model.safetensors, ...) bit-identical to the "
                  f"uninterrupted run{'' if not different else f'; differ: {different}'}")

        # GPTQ (w4a16-gptq, block by block) killed from outside once a rank has saved block 5,
        # then resumed: its blocks 0..k restored, the rest quantized, the observers after it.
        gptq = [arg for arg in llama if arg not in ("w4a16",)]
        gptq[gptq.index("--scheme") + 1:gptq.index("--scheme") + 1] = ["w4a16-gptq"]
        gptq[gptq.index("--steps") + 1] = "4"
        whole = run(2, [*gptq, "--out", "gptq-whole"], folder)
        check(whole.returncode == 0, f"SmolLM2 GPTQ uninterrupted: {whole.stderr[-300:]}")
        out = "gptq-resumed"
        checkpoint = os.path.join(folder, f".{out}.checkpoint")
        victim, status = killed_from_outside(gptq, out, folder,
                                             lambda: os.path.exists(os.path.join(checkpoint, "rank-0.gptq-block-5.json")))
        blocks = sorted(n for n in os.listdir(checkpoint) if "gptq-block" in n and n.endswith(".json")) if os.path.isdir(checkpoint) else []
        steps = [n for n in os.listdir(checkpoint) if ".step-" in n] if os.path.isdir(checkpoint) else []
        check(victim is not None and status != 0 and len(blocks) >= 6 and not steps
              and not os.path.exists(os.path.join(folder, out)),
              f"SmolLM2 GPTQ: one rank killed with kill -9 after block 5: exit {status}, {len(blocks)} GPTQ block records, "
              f"{len(steps)} step files")
        # Rank 1 loses its last block (as if killed while writing it): the ranks resume from the
        # blocks both hold.
        held = {rank: sorted(int(n.split("gptq-block-")[1].split(".")[0]) for n in blocks if n.startswith(f"rank-{rank}."))
                for rank in (0, 1)}
        if held[1]:
            for kind in ("json", "safetensors"):
                os.remove(os.path.join(checkpoint, f"rank-1.gptq-block-{held[1][-1]}.{kind}"))
        expected = min(len(held[0]), len(held[1]) - 1)
        talkative = [arg for arg in gptq if arg != "--quiet"]
        resumed = run(2, [*talkative, "--out", out, "--resume"], folder)
        restored = next((line for line in resumed.stderr.splitlines() if "blocks restored" in line), "")
        if resumed.returncode != 0:
            check(False, f"SmolLM2 GPTQ --resume: {resumed.stderr[-400:]}")
        else:
            different, count = differing_files(os.path.join(folder, "gptq-whole"), os.path.join(folder, out))
            check(not different and os.path.exists(os.path.join(folder, out, "model.gguf")) and not os.path.exists(checkpoint)
                  and f"first {expected} of 30 blocks" in restored,
                  f"SmolLM2 GPTQ killed after block 5, rank 1's last block removed, resumed ({restored.strip() or 'no restore note'}; "
                  f"expected {expected}): {count} files "
                  f"bit-identical to the uninterrupted run{'' if not different else f'; differ: {different}'}")
        # Killed during the observers' steps (after a step-2 checkpoint): every GPTQ block restored.
        shutil.rmtree(os.path.join(folder, out), ignore_errors=True)
        killed = run(2, [*gptq, "--out", out, "--inject-failure", "1:3:kill"], folder)
        saved = sorted(os.listdir(checkpoint)) if os.path.isdir(checkpoint) else []
        # A copy of the intact checkpoint, restored after the refusal below (one killed run, not two).
        intact = os.path.join(folder, "gptq-intact.checkpoint")
        if os.path.isdir(checkpoint):
            shutil.copytree(checkpoint, intact)
        block = next((n for n in saved if n.startswith("rank-1.gptq-block-7.safetensors")), None)
        if block:
            with open(os.path.join(checkpoint, block), "r+b") as f:
                f.truncate(os.path.getsize(os.path.join(checkpoint, block)) - 8)
        refused = run(2, [*gptq, "--out", out, "--resume"], folder)
        check(killed.returncode != 0 and "rank-1.step-2.json" in saved and block is not None and refused.returncode != 0
              and "rank-1.gptq-block-7.safetensors" in refused.stderr and "truncated" in refused.stderr,
              f"a truncated GPTQ block file on rank 1 is refused by name: {refused.stderr.strip().splitlines()[:1]}")
        shutil.rmtree(checkpoint, ignore_errors=True)
        if os.path.isdir(intact):
            shutil.move(intact, checkpoint)
        resumed = run(2, [*talkative, "--out", out, "--resume"], folder)
        notes = [line.strip() for line in resumed.stderr.splitlines() if "resume:" in line]
        if resumed.returncode != 0:
            check(False, f"SmolLM2 GPTQ --resume after step 2: {resumed.stderr[-400:]}")
        else:
            different, count = differing_files(os.path.join(folder, "gptq-whole"), os.path.join(folder, out))
            check(not different and any("first 30 of 30 blocks" in n for n in notes),
                  f"SmolLM2 GPTQ killed at step 3 and resumed: {notes}; {count} files bit-identical"
                  f"{'' if not different else f'; differ: {different}'}")

sys.exit(summary())
