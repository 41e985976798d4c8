"""``Workspace``: the job API a pipeline imports (the ``jobs`` command is a thin layer over it).

    from mask_grounding_dino.jobs import Workspace

    ws = Workspace("mgd_jobs")
    train = ws.create_job("train", spec_file="spec.yaml", spec_overrides={"train.num_epochs": 3})
    export = ws.create_job("export", spec_file="spec.yaml", parent_job_id=train.id)
    evaluate = ws.create_job("evaluate", spec_file="spec.yaml", parent_job_id=export.id)
    ws.wait([evaluate.id])
    print(ws.get_job(evaluate.id).metrics)

Jobs run as detached processes (runner.py, supervisor.py): they survive the process that
created them. Every look (``get_job``, ``list_jobs``, ``wait``) first settles jobs whose
processes died, and starts a runner when jobs are Pending and none runs.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator

from . import lifecycle, processes
from .automl_policy import decide
from .errors import JobError, UnknownJobError
from .job import Job
from .logs import follow
from .rules import check_action, check_parent
from .settings import CANCEL_GRACE_S, default_max_concurrent, resolve_database_url, workspace_path
from .spec_params import spec_param_table
from .specs import read_request
from .status import PENDING, STATUSES, TERMINAL, normalise
from .store import Store

MAX_CONCURRENT_KEY = "max_concurrent"


class Workspace:
    """A folder of jobs: ``jobs.db`` and ``results/<job_id>/`` (see settings.py for the defaults).

    Args:
        path: the folder (default ``$MASK_GROUNDING_DINO_JOBS``, else ``./mgd_jobs``), created.
        database_url: a SQLAlchemy URL (default: ``sqlite:///<path>/jobs.db``).
        start_runner: start a runner when a look finds Pending jobs and none runs.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, database_url: str | None = None,
                 start_runner: bool = True):
        self.path = workspace_path(path)
        os.makedirs(os.path.join(self.path, "results"), exist_ok=True)
        self.database_url = resolve_database_url(self.path, database_url)
        self.store = Store(self.database_url)
        self.auto_runner = start_runner

    def __repr__(self) -> str:
        return f"Workspace({self.path!r})"

    # -- files -------------------------------------------------------------------------------
    @property
    def lock_path(self) -> str:
        return os.path.join(self.path, "runner.lock")

    @property
    def runner_log(self) -> str:
        return os.path.join(self.path, "runner.log")

    def results_dir(self, job_id: str) -> str:
        return os.path.join(self.path, "results", job_id)

    # -- settings ------------------------------------------------------------------------------
    @property
    def max_concurrent(self) -> int:
        """Jobs running at once (default: 1 on a CPU machine, one per visible GPU)."""
        with self.store.read() as conn:
            value = self.store.setting(conn, MAX_CONCURRENT_KEY)
        return int(value) if value else default_max_concurrent()

    def set_max_concurrent(self, value: int) -> None:
        if int(value) < 1:
            raise JobError(f"max_concurrent must be at least 1, got {value}")
        with self.store.write() as conn:
            self.store.set_setting(conn, MAX_CONCURRENT_KEY, str(int(value)))

    # -- creating ------------------------------------------------------------------------------
    def create_job(self, action: str, spec_file: str | os.PathLike | None = None, spec_overrides=None, *,
                   parent_job_id: str | None = None, name: str | None = None, specs: dict | None = None,
                   automl_policy: str | None = "auto", automl_settings: dict | str | None = None, start: bool = True,
                   skill_root: str | None = None) -> Job:
        """Queue a job; it starts when its parent is Done (at once without a parent), within the
        concurrency limit.

        Args:
            action: train, evaluate, inference, export, quantize or gen_trt_engine.
            spec_file: a YAML spec; its contents are stored with the job (later edits of the
                file do not change it). Relative paths in it are read from the current folder.
            spec_overrides: dotted keys (``{"train.num_epochs": 3}``) or ``key=value`` strings.
            parent_job_id: the job whose model this one uses (id, unique id prefix, or name).
            specs: a nested spec dict merged over the file (TAO's ``specs``).
            automl_policy: train only: ``auto`` (AutoML when the skill enables it), ``on`` or ``off``.
            automl_settings: an AutoML job's settings (TAO's names; a dict or a YAML file).
            start: start a runner if none runs (False: stay Pending until something starts one).

        Raises ``UserError`` (nothing is stored) for an unknown action, parent or spec key, a
        parent of the wrong kind, or a spec that does not validate.
        """
        check_action(action)
        request, cfg = read_request(spec_file, specs, spec_overrides)
        decision = decide(action, automl_policy, skill_root)
        settings = _automl_settings(decision, automl_settings)
        with self.store.write() as conn:
            parent = None
            if parent_job_id:
                parent = self._find(conn, parent_job_id, role="parent job")
                check_parent(action, parent.action, parent.label)
            else:
                _require_model(action, cfg)
            job_id = self._insert(conn, action, request, decision, parent, name)
            if settings is not None:
                _save_automl_settings(self.results_dir(job_id), settings)
        if start:
            self.start_runner()
        return self.get_job(job_id, settle=False)

    def chain(self, spec_file: str | os.PathLike | None = None, spec_overrides=None, *, name: str | None = None,
              specs: dict | None = None, automl_policy: str | None = "auto", start: bool = True,
              skill_root: str | None = None) -> dict[str, Job]:
        """train -> export -> evaluate (of the ONNX file) and inference (with it), from one spec:
        four linked jobs, every model path filled by spec-parameter inference, created in one
        transaction (all four or none)."""
        request, _ = read_request(spec_file, specs, spec_overrides)
        parents = {"train": None, "export": "train", "evaluate": "export", "inference": "export"}
        ids: dict[str, str] = {}
        with self.store.write() as conn:
            for action, parent_action in parents.items():
                decision = decide(action, automl_policy if action == "train" else None, skill_root)
                parent = Job.from_row(self.store.get(conn, ids[parent_action])) if parent_action else None
                label = f"{name}-{action}" if name else None
                ids[action] = self._insert(conn, action, request, decision, parent, label)
        if start:
            self.start_runner()
        return {action: self.get_job(job_id, settle=False) for action, job_id in ids.items()}

    def _insert(self, conn, action: str, request, decision, parent: Job | None, name: str | None) -> str:
        job_id = str(uuid.uuid4())
        now = time.time()
        self.store.insert_job(conn, {
            "id": job_id, "name": name, "action": action, "status": PENDING,
            "parent_id": parent.id if parent else None, "spec_file": request.spec_file,
            "spec_data": request.data, "spec_overrides": request.overrides, "workdir": os.getcwd(),
            "results_dir": self.results_dir(job_id), "automl_policy": decision.policy,
            "automl_decision": decision.decision, "automl_note": decision.note, "attempts": 0,
            "cancel_requested": False, "created_at": now, "queued_at": now, "run_seconds": 0.0})
        waits = f"; waits for parent job {parent.label}" if parent and parent.status != "Done" else ""
        self.store.add_event(conn, job_id, PENDING, f"created{waits}", now)
        return job_id

    # -- looking -------------------------------------------------------------------------------
    def settle(self) -> None:
        """Record dead jobs as such and make sure Pending jobs have a runner."""
        lifecycle.reap(self.store)
        if self.auto_runner:
            self.start_runner()

    def start_runner(self) -> bool:
        from .runner import ensure_runner

        return ensure_runner(self)

    def get_job(self, ref: str, *, settle: bool = True) -> Job:
        """A job by id, unique id prefix or name."""
        if settle:
            self.settle()
        with self.store.read() as conn:
            return self._find(conn, ref)

    def list_jobs(self, *, status: str | Iterable[str] | None = None, action: str | None = None) -> list[Job]:
        """Jobs in creation order, optionally of some statuses (TAO's names; "Complete" reads as Done)."""
        self.settle()
        statuses = None
        if status:
            wanted = [status] if isinstance(status, str) else list(status)
            try:
                statuses = tuple(normalise(s) for s in wanted)
            except ValueError as exc:
                raise JobError(str(exc)) from None
        if action:
            check_action(action)
        with self.store.read() as conn:
            return [Job.from_row(r) for r in self.store.select_jobs(conn, statuses=statuses, action=action)]

    def children(self, job_id: str) -> list[Job]:
        with self.store.read() as conn:
            return [Job.from_row(r) for r in self.store.select_jobs(conn, parent_id=job_id)]

    def events(self, job_id: str) -> list[dict]:
        with self.store.read() as conn:
            return self.store.events(conn, job_id)

    def has_pending(self) -> bool:
        return self.count((PENDING,)) > 0

    def count(self, statuses: tuple[str, ...] = STATUSES) -> int:
        with self.store.read() as conn:
            return self.store.count(conn, statuses)

    def wait(self, refs: str | Iterable[str], timeout: float | None = None, poll: float = 0.5) -> list[Job]:
        """Block until every job ended (Done, Error or Canceled); returns them.
        Raises ``TimeoutError`` after ``timeout`` seconds."""
        refs = [refs] if isinstance(refs, str) else list(refs)
        ids = [self.get_job(r, settle=False).id for r in refs]
        deadline = None if timeout is None else time.time() + timeout
        while True:
            self.settle()
            with self.store.read() as conn:
                jobs = [Job.from_row(self.store.get(conn, i)) for i in ids]
            if all(j.status in TERMINAL for j in jobs):
                return jobs
            if deadline is not None and time.time() > deadline:
                left = ", ".join(f"{j.label} {j.status}" for j in jobs if j.status not in TERMINAL)
                raise TimeoutError(f"jobs still running after {timeout:.0f} s: {left}")
            time.sleep(poll)

    def logs(self, ref: str, *, follow_: bool = False) -> Iterator[str]:
        """The job's log text; with ``follow_``, keep yielding what is appended until the job ends."""
        job = self.get_job(ref)
        if not follow_:
            yield from follow(job.log_path, lambda: True)
            return
        yield from follow(job.log_path, lambda: self.get_job(job.id).status in TERMINAL)

    # -- changing ------------------------------------------------------------------------------
    def cancel(self, ref: str, *, grace: float = CANCEL_GRACE_S, wait: bool = True) -> Job:
        """Cancel a Pending job (it never starts) or a Running one: SIGTERM to its process group,
        SIGKILL after ``grace`` seconds; with ``wait``, return once it is Canceled."""
        job = self.get_job(ref)
        outcome = lifecycle.cancel(self.store, job)
        if outcome == "requested":
            current = self.get_job(job.id, settle=False)
            if processes.same_machine(current.host, current.boot_id) and current.process_pid:
                # Here: stop it now rather than at the supervisor's next heartbeat.
                processes.stop_group(current.process_pid, current.process_start, grace)
            if wait:
                return self.wait([job.id], timeout=grace + 60)[0]
        return self.get_job(job.id)

    def retry(self, ref: str) -> list[Job]:
        """Queue an Error / Canceled job again (and its descendants that failed because of it).
        A train job resumes from its own latest checkpoint."""
        job = self.get_job(ref)
        queued = lifecycle.retry(self.store, job)
        self.start_runner()
        with self.store.read() as conn:
            return [Job.from_row(self.store.get(conn, i)) for i in queued]

    # -- helpers -------------------------------------------------------------------------------
    def _find(self, conn, ref: str, role: str = "job") -> Job:
        ref = str(ref).strip()
        rows = self.store.lookup(conn, ref) if ref else []
        if not rows:
            raise UnknownJobError(f"unknown {role} {ref!r} in {self.path}; 'mask_grounding_dino jobs list' shows the "
                                  "ids")
        if len(rows) > 1:
            names = ", ".join(Job.from_row(r).label for r in rows[:5])
            raise UnknownJobError(f"{role} {ref!r} is ambiguous in {self.path}: {names}; give more of the id")
        return Job.from_row(rows[0])


AUTOML_SETTINGS_FILE = "automl_settings.yaml"


def _automl_settings(decision, given):
    """Checked AutoML settings for an AutoML job (None for others); raises UserError before
    anything is stored."""
    from .automl_policy import AUTOML

    if given is None:
        return None
    if decision.decision != AUTOML:
        raise JobError(f"automl_settings given, but this job trains plainly ({decision.note}); "
                       "use automl_policy on")
    from ..automl.settings import load_settings

    if isinstance(given, dict):
        return load_settings(None, given)
    return load_settings(os.fspath(given))


def _save_automl_settings(job_dir: str, settings) -> None:
    import yaml

    from ..utils.atomic import atomic_write_text

    given = {k: v for k, v in settings.to_dict().items() if v is not None}
    atomic_write_text(os.path.join(job_dir, AUTOML_SETTINGS_FILE), yaml.safe_dump(given, sort_keys=False))


def _require_model(action: str, cfg) -> None:
    """Without a parent, the model file must come from the spec."""
    from ..config import get_value, is_unset

    keys = [k for k, f in spec_param_table(action).items() if f == "parent_model"]
    if action in ("evaluate", "inference"):
        keys.append(f"{action}.trt_engine")
    if keys and all(is_unset(get_value(cfg, k)) for k in keys):
        raise JobError(f"{keys[0]}: required for {action} without a parent job; set it in the spec or give "
                       "parent_job_id (--parent)")

