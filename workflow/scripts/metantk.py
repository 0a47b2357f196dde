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
* Which GPU a ``gpu`` job runs on is not decided here: the command claims a free GPU itself
  (``metantk_nas.device.select_device``, a lock file per device held for the command's life), as it
  does when run by hand.
"""

# `snakemake` (input, output, params, log, threads) is injected by the script directive.
import hashlib
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(snakemake.scriptdir).resolve().parents[1] / "src"


def resume_folder(base: str, argv: list[str], inputs: list[str]) -> str:
    """``BASE-<key>``: the key changes with the command line or with any input file's content."""
    key = hashlib.sha256("\0".join(argv).encode())
    for path in sorted(inputs):
        key.update(path.encode())
        key.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return f"{base}-{key.hexdigest()[:12]}"


def run(argv: list[str], log: str) -> int:
    """Run ``metantk-nas ARGV`` with its output in ``log``; returns its exit status."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with open(log, "w") as handle:
        print("metantk-nas", *argv, flush=True, file=handle)
        command = [sys.executable, "-m", "metantk_nas.cli", *argv]
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode


arguments = [str(arg) for arg in snakemake.params.argv]
if getattr(snakemake.params, "resume", None):
    arguments += ["--work", resume_folder(snakemake.params.resume, arguments, list(snakemake.input))]
arguments += ["--threads", str(snakemake.threads)]
sys.exit(run(arguments, snakemake.log[0]))
