"""Jobs: create, chain, watch and resume runs the way TAO's API does, on an embedded database.

    from mask_grounding_dino.jobs import Workspace

    ws = Workspace()                                  # ./mgd_jobs (or $MASK_GROUNDING_DINO_JOBS)
    jobs = ws.chain("spec.yaml")                      # train -> export -> evaluate + inference
    ws.wait([j.id for j in jobs.values()])

The command line is ``mask_grounding_dino jobs ...`` (jobs/cli.py). Layers: store (SQL),
lifecycle (status transitions), runner (launches Pending jobs), supervisor (runs one attempt),
spec_params + outputs + artifacts (TAO's spec-parameter inference), workspace (this API).
"""

from .errors import JobError, JobStateError, UnknownJobError
from .job import Job
from .status import CANCELED, DONE, ERROR, PENDING, RUNNING, STATUSES
from .workspace import Workspace

__all__ = ["CANCELED", "DONE", "ERROR", "PENDING", "RUNNING", "STATUSES", "Job", "JobError", "JobStateError",
           "UnknownJobError", "Workspace"]
