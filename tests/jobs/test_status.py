"""Status names: TAO's API names, and the SDK's "Complete" read as Done."""

import pytest

from mask_grounding_dino.jobs import Workspace
from mask_grounding_dino.jobs.errors import JobError
from mask_grounding_dino.jobs.status import CANCELED, DONE, STATUSES, normalise


def test_taos_api_names():
    assert STATUSES == ("Pending", "Running", "Done", "Error", "Canceled")


@pytest.mark.parametrize("name,status", [("Complete", DONE), ("complete", DONE), ("Done", DONE), ("DONE", DONE),
                                         ("Cancelled", CANCELED), ("canceled", CANCELED)])
def test_other_spellings(name, status):
    assert normalise(name) == status


def test_list_reads_complete_and_refuses_a_non_status(tmp_path):
    ws = Workspace(tmp_path, start_runner=False)
    job = ws.create_job("export", spec_overrides={"export.checkpoint": "/m.pth"}, start=False)
    with ws.store.write() as conn:
        ws.store.update_job(conn, job.id, {"status": DONE})
    assert [j.id for j in ws.list_jobs(status="Complete")] == [job.id]
    with pytest.raises(JobError, match="unknown job status 'Finished'"):
        ws.list_jobs(status="Finished")
