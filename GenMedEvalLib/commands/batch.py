"""``genmedeval batch JOB.yaml``: one job file runs metrics, quality, sweep and compare, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_trust_option, write_template

ORDER = 55


def register(sub: argparse._SubParsersAction) -> None:
    """Add the batch command."""
    p = sub.add_parser("batch", help="run a YAML job (sets, stages, settings, outputs) resumably",
                       description="Run every stage of JOB (see --write-example): features, quality, metrics, sweep, "
                       "compare, a Slicer scene bundle. Every unit of work is journalled when done; run the same "
                       "job again after a kill and it resumes, recomputing nothing already done. Exit 0 done, "
                       "2 bad input (one line naming the file and key), 1 failure.")
    p.add_argument("job", type=Path, nargs="?", help="job file (YAML)")
    p.add_argument("--restart", action="store_true",
                   help="forget the outputs folder's journal and start again (the caches still serve what they hold)")
    p.add_argument("--check", action="store_true", help="validate the job file and its inputs, run nothing")
    p.add_argument("--write-example", type=Path, default=None, metavar="PATH",
                   help="write an example job (the demo cohort's splits) to PATH and stop")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --write-example file")
    add_trust_option(p)
    p.set_defaults(func=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    """Validate the job, apply its device and threads, run it, print where the outputs are."""
    from ..batch import load_job, run_batch
    from ..errors import ParameterError
    from ..threads import set_default_device, set_threads

    if args.write_example is not None:
        from ..batch.job import EXAMPLE

        return write_template(args.write_example, EXAMPLE, overwrite=args.overwrite, option="--write-example",
                              what="example job")
    if args.job is None:
        raise ParameterError("give a JOB file (or --write-example PATH)")
    job = load_job(args.job)
    set_default_device(job.device)
    set_threads(job.threads)
    if args.check:
        from ..batch.runner import check_job_inputs

        check_job_inputs(job)
        print(f"{args.job}: valid; stages {', '.join(job.stages)} -> {job.outputs.folder}")
        return 0
    run = run_batch(job, restart=args.restart)
    entries = run.journal.this_run
    done = sum(e["status"] == "done" for e in entries)
    print(f"{job.name}: {done} units done, {len(entries) - done} reused from an earlier run, {run.seconds} s "
          f"-> {run.folder}")
    if job.outputs.report:
        for report in sorted(run.folder.glob("*/report.html")):
            print(f"report: {report.resolve()}")
    return 0
