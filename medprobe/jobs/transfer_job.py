"""`medprobe transfer SPEC`: only the transfer step of a site job, on the embedding tables its last run cached.

A site that ran before the others had published anything scores their heads later this way; nothing is embedded
or probed again.
"""

from __future__ import annotations

from collections.abc import Callable

from medprobe.embed.table import read_table
from medprobe.errors import MedprobeError
from medprobe.jobs.recording import JobRecorder
from medprobe.jobs.site_job import JobReport
from medprobe.jobs.transfer_step import transfer_step
from medprobe.jobs.workdir_lock import hold_workdir
from medprobe.pipeline_spec import PipelineSpec, load_manifest
from medprobe.transfer import FeatureSpace


def run_transfer(spec: PipelineSpec, say: Callable[[str], None] = print) -> JobReport:
    """Score the heads other sites published on every cached table of the job; the tracking store must answer."""
    tables = {model.key: spec.paths.table(model.key) for model in spec.models}
    missing = [key for key, path in tables.items() if not path.is_file()]
    if missing:
        raise MedprobeError(f"no cached embedding table for model(s) {', '.join(missing)} in the workdir "
                            f"{spec.workdir}: run `medprobe run SPEC` first")
    manifest = load_manifest(spec.data.manifest, [t.target for t in spec.tasks])
    with hold_workdir(spec.workdir), JobRecorder(spec, manifest, require_server=True) as recorder:
        report = JobReport(spec.site, spec.experiment_name, recorder.display_uri, bundle_path=recorder.bundle_path)
        for key, path in tables.items():
            frame, X, metadata = read_table(path)
            outcomes, notes = transfer_step(spec.context, spec.tasks, spec.protocols.linear,
                                            FeatureSpace.of_table(key, metadata), frame, X, recorder, say)
            report.transfers += outcomes
            report.transfer_notes += notes
    report.offline_reason = recorder.offline_reason
    report.failed_runs = list(recorder.runs.failed_runs)
    return report
