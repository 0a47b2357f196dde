"""Run one ``metantk-nas`` sub-command for a Snakemake job (``params.argv``).

* The command runs with this job's interpreter (the caller's venv, or the rule's conda env) and the
  checkout's ``src/`` first on ``PYTHONPATH``, so a conda env needs only the dependencies and always
  runs the code that the rule tracks as input.
* Its stdout and stderr go to the job's log; it runs with ``--threads`` = the job's ``threads`` (torch,
  OpenMP and BLAS use exactly that many).
* A job with ``params.resume`` (search, train) gets ``--work RESUME-<key>``, the key a hash of its
  command line and of every input file's bytes (data, upstream results, package sources): a job
  killed and rerun unchanged resumes from its checkpoint there, while a job rerun because its code,
  config or inputs changed gets a fresh folder instead of a stale checkpoint it would refuse.
* A job that requests the ``gpu`` resource first claims one free GPU (a lock file per device,
  ``metantk_nas.device.claim_gpu``) and runs the command on it alone: Snakemake only counts GPUs
  and never says which device a job got. The lock is held here for the command's whole life; the
  command gets a private lock folder, so a command that claims a GPU itself simply finds the one
  it was given.
"""

# `snakemake` (input, output, params, log, threads, resources) is injected by the script directive.
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(snakemake.scriptdir).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from metantk_nas.device import claim_gpu  # noqa: E402  (after the path is set)


def resume_folder(base: str, argv: list[str], inputs: list[str]) -> str:
    """``BASE-<key>``: the key changes with the command line or with any input file's content."""
    key = hashlib.sha256("\0".join(argv).encode())
    for path in sorted(inputs):
        key.update(path.encode())
        key.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return f"{base}-{key.hexdigest()[:12]}"


def run(argv: list[str], log: str, gpu: bool) -> int:
    """Run ``metantk-nas ARGV`` with its output in ``log``; returns its exit status."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with open(log, "w") as handle, contextlib.ExitStack() as stack:
        print("metantk-nas", *argv, flush=True, file=handle)
        if gpu:
            device = stack.enter_context(claim_gpu())
            print(f"GPU claimed: {device if device is not None else 'none visible, running on the CPU'}",
                  flush=True, file=handle)
            if device is not None:
                env["CUDA_VISIBLE_DEVICES"] = device
                env["METANTK_GPU_LOCK_DIR"] = stack.enter_context(tempfile.TemporaryDirectory())
        command = [sys.executable, "-m", "metantk_nas.cli", *argv]
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode


arguments = [str(arg) for arg in snakemake.params.argv]
if getattr(snakemake.params, "resume", None):
    arguments += ["--work", resume_folder(snakemake.params.resume, arguments, list(snakemake.input))]
arguments += ["--threads", str(snakemake.threads)]
sys.exit(run(arguments, snakemake.log[0], bool(getattr(snakemake.resources, "gpu", 0))))
