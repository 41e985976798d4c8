"""Every location a user gives is read through ``mask_grounding_dino/data/fileio.py``.

A spec may name its data sources and checkpoints as ``s3://`` URLs (TAO's documented workflow
keeps everything in object storage). The built-in ``open``, ``os.path.exists``, ``glob`` and
friends only see the local disk, so one of them on a user-given path makes that key silently
local-only (``metrics/coco_results.py`` once opened the COCO ground truth with ``open()``:
``evaluate`` ran every batch, then failed with "file not found" on an existing S3 object).

This test parses the package and lists every call that reads, lists or probes the file system
directly. Each one must be in ``ALLOWED`` with the reason it never sees a user-given location
(our own results folder, the cache, a temporary file, a package resource, or a key that
``config/validate.py`` refuses as a URL). A new, unlisted call fails the test; so does an entry
that no longer matches (the list stays exact).
"""

from __future__ import annotations

import ast
import collections
import pathlib
import textwrap

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "mask_grounding_dino"

#: ``os.path`` probes, ``os`` listings and ``stat``s, and loaders that take a path.
_OS_PATH = {"exists", "lexists", "isfile", "isdir", "islink", "getsize", "getmtime", "getctime", "samefile"}
_OS = {"listdir", "scandir", "walk", "stat", "lstat"}
_PATH_LOADERS = {"torch.load", "np.load", "numpy.load", "onnx.load", "Image.open", "PIL.Image.open",
                 "ort.InferenceSession", "onnxruntime.InferenceSession", "io.open", "codecs.open"}
#: ``pathlib.Path`` methods that read or probe (``.exists()`` / ``.stat()``: without arguments,
#: which tells them from ``fs.exists(path)`` and ``ImageSource.exists(name)``).
_PATHLIB = {"read_text", "read_bytes", "is_file", "is_dir", "iterdir", "glob", "rglob"}
_NAMES = {"open", "glob", "iglob", "load_file"}   # builtin open; from glob / safetensors imports


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _call_name(call: ast.Call) -> str | None:
    """The file-system call ``call`` makes, or ``None``."""
    func, dotted = call.func, _dotted(call.func)
    if isinstance(func, ast.Name) and func.id in _NAMES:
        return func.id
    if dotted:
        parts = dotted.split(".")
        if dotted.startswith("os.path.") and parts[-1] in _OS_PATH:
            return dotted
        if len(parts) == 2 and parts[0] == "os" and parts[1] in _OS:
            return dotted
        if parts[0] in ("glob", "shutil") or dotted in _PATH_LOADERS:
            return dotted
        if dotted == "tarfile.open" and (call.args or any(k.arg == "name" for k in call.keywords)):
            return dotted              # tarfile.open(fileobj=...) reads an already-open file
    if isinstance(func, ast.Attribute) and _dotted(func.value) != "self":
        if func.attr in _PATHLIB:
            return "." + func.attr
        if func.attr in ("exists", "stat") and not call.args:
            return f".{func.attr}()"
        if func.attr == "from_pretrained":
            return ".from_pretrained"
    return None


def file_access_calls(source: str) -> list[tuple[str, str]]:
    """``(enclosing function qualname, call)`` of every direct file-system call in ``source``."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = scope + (child.name,)
            if isinstance(child, ast.Call):
                name = _call_name(child)
                if name:
                    found.append((".".join(scope) or "<module>", name))
            visit(child, inner)

    visit(ast.parse(source), ())
    return found


def package_calls() -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for scope, name in file_access_calls(path.read_text(encoding="utf-8")):
            counts[(rel, scope, name)] += 1
    return counts


#: The file layer itself: every user-given location ends up here.
LAYER = "data/fileio.py"

_RESULTS = "writes / reads our own results folder (results_dir is local: config/validate.py refuses URLs)"
_MISSING = "lists the local folder of a missing local model file for the error (URLs get fileio's message first)"
_CACHE = "the project's cache folder (archives extracted, URLs fetched), never a user path"
_WORKSPACE = "the jobs workspace, a local folder of our own (database, results/<job_id>/, logs, lock)"
_JOB_RESULTS = "a job's own results folder in the workspace (results_dir is set by the job: <workspace>/results/<id>)"
_PROC = "the kernel's process and boot records (/proc), for the liveness of a job's process"
_QLOCAL = "quantize.model_path's local file (fileio.local_copy in quantize/request.py)"

#: ``(module, function, call): (count, why it never touches a user-given location)``.
ALLOWED: dict[tuple[str, str, str], tuple[int, str]] = {
    # -- AutoML: checkpoints its own trial jobs wrote, copied into its own folder
    ("automl/pbt.py", "transplant", "shutil.copyfile"): (1, "a PBT member's checkpoint, written by a trial job of "
                                                            "the study, into the study's own folder"),
    ("automl/pbt.py", "transplant", "torch.load"): (1, "a PBT member's checkpoint, written by a trial job of the "
                                                       "study (weights_only)"),
    # -- the data layer: cache, temporary files, decoded bytes
    ("data/sources/archive.py", "extract_archive", "os.path.isdir"): (2, _CACHE),
    ("data/sources/archive.py", "_extract_into", "os.path.isdir"): (1, _CACHE),
    ("data/sources/archive.py", "_extract_into", "shutil.rmtree"): (2, "the half-extracted temporary folder in the cache"),
    ("data/sources/archive.py", "_read_small", "open"): (1, "the archive-key file in the cache"),
    ("data/sources/base.py", "decode_image", "Image.open"): (1, "decodes bytes or a file object fileio opened"),
    ("data/sources/base.py", "header_size", "Image.open"): (1, "decodes bytes or a file object fileio opened"),
    ("data/synth/generate.py", "_sha256", "open"): (1, "hashes a file the synthetic generator just wrote"),
    ("data/synth/generate.py", "generate_synthetic_dataset", "os.path.exists"): (
        1, "`dataset synth --out`: the local folder the generator writes"),
    ("data/synth/generate.py", "generate_synthetic_dataset", "os.path.isdir"): (
        1, "`dataset synth --out`: the local folder the generator writes"),
    ("data/synth/generate.py", "generate_synthetic_dataset", "os.listdir"): (
        1, "`dataset synth --out`: the local folder the generator writes"),
    ("data/synth/generate.py", "generate_synthetic_dataset", "os.path.isfile"): (
        1, "`dataset synth --out`: the local folder the generator writes"),
    # -- checkpoints and models: loaders given the local copy fileio made
    ("model/checkpoint/io.py", "torch_load", "torch.load"): (
        2, "loads fileio.local_copy(path) (URLs fetched once); a second try without mmap for legacy files"),
    ("model/checkpoint/io.py", "read_safetensors", "load_file"): (1, "loads fileio.local_copy(path) (URLs fetched once)"),
    ("model/checkpoint/hf.py", "read_hf_folder", ".is_file"): (
        4, "read_checkpoint passes the folder's fileio.local_copy"),
    ("model/checkpoint/hf.py", "read_hf_folder", ".read_text"): (
        2, "read_checkpoint passes the folder's fileio.local_copy"),
    ("deploy/onnx_runner.py", "OnnxBackend.__init__", "onnx.load"): (
        1, "opens fileio.local_copy(path) (URLs fetched once)"),
    ("deploy/onnx_runner.py", "OnnxBackend._new_session", "ort.InferenceSession"): (
        1, "that local copy, or the two halves of its graph in memory (bytes, not a path)"),
    ("deploy/onnx_runner.py", "OnnxBackend.set_intra_op_threads", "onnx.load"): (
        1, "the local copy fileio.local_copy made of the model file"),
    ("utils/digest.py", "checkpoint_model_weights", "torch.load"): (
        1, "a checkpoint the digesting run wrote itself, locally (tests, bench/quickstart_seeds.py)"),
    ("deploy/preprocess.py", "load_rgb", "Image.open"): (1, "decodes the file object fileio.open_binary opened"),
    ("text/tokenizer.py", "resolve_text_encoder", "os.path.isdir"): (
        1, "model.text_encoder_type: a local folder or a hub id (config/validate.py refuses URLs)"),
    ("model/text_encoder.py", "build_text_encoder", ".from_pretrained"): (
        3, "model.text_encoder_type: a local folder or a hub id (config/validate.py refuses URLs)"),
    ("model/text_encoder.py", "_unsafe_weights", "os.path.isfile"): (
        1, "model.text_encoder_type's local folder, for the error (config/validate.py refuses URLs)"),
    ("text/tokenizer.py", "load_tokenizer", ".from_pretrained"): (
        1, "model.text_encoder_type: a local folder or a hub id (config/validate.py refuses URLs)"),
    ("export/onnx_check.py", "check_onnx", ".is_file"): (
        1, "the ONNX file export just wrote (export.onnx_file is local: config/validate.py refuses URLs)"),
    ("export/onnx_check.py", "check_onnx", "ort.InferenceSession"): (
        1, "the ONNX file export just wrote (export.onnx_file is local: config/validate.py refuses URLs)"),
    ("export/onnx_export.py", "_validate", ".is_dir"): (
        1, "export.onnx_file, an output (local: config/validate.py refuses URLs)"),
    ("export/onnx_export.py", "export_onnx", "onnx.load"): (1, "our temporary export file"),
    # -- quantize and gen_trt_engine: quantize.model_path is read through fileio.local_copy
    # (quantize/request.py); everything else is a file the action wrote (temporary or in its results folder)
    ("quantize/runner.py", "_quantize_onnx", "onnx.load"): (1, _QLOCAL),
    ("quantize/modelopt_onnx.py", "graph_input", "onnx.load"): (1, _QLOCAL),
    ("quantize/modelopt_onnx.py", "quantize_onnx", ".is_file"): (1, "the file modelopt.onnx just wrote in a temporary folder"),
    ("quantize/onnx_nodes.py", "read_metadata", "onnx.load"): (1, _QLOCAL),
    ("quantize/onnx_nodes.py", "write_metadata", "onnx.load"): (1, "the graph quantize just wrote in a temporary folder"),
    ("quantize/cpu_int8.py", "quantize_graph", "onnx.load"): (1, _QLOCAL + ", or the float graph quantize exported"),
    ("quantize/cpu_int8.py", "quantize_for_cpu", "onnx.load"): (1, "the float graph quantize just exported (temporary)"),
    ("quantize/cpu_int8.py", "lean_calibration_sessions.create_inference_session", "ort.InferenceSession"):
        (1, "the augmented graph onnxruntime's calibrator wrote in its temporary folder"),
    ("quantize/report.py", "file_size_mb", "os.path.isfile"): (1, _QLOCAL + ", or the file quantize wrote"),
    ("quantize/report.py", "file_size_mb", "os.path.getsize"): (1, _QLOCAL + ", or the file quantize wrote"),
    ("quantize/onnx_session.py", "qdq_form", "onnx.load"): (
        1, "a local file: OnnxBackend's fileio.local_copy, the file export just wrote, or quantize's local copy"),
    ("quantize/onnx_session.py", "activation_step", "onnx.load"): (1, "the ONNX file export just wrote (check_onnx)"),
    ("deploy/trtexec.py", "inspect_onnx", "os.path.isfile"): (
        1, "gen_trt_engine.onnx_file (local: config/validate.py refuses URLs, trtexec reads a local file)"),
    ("deploy/trtexec.py", "inspect_onnx", "onnx.load"): (
        1, "gen_trt_engine.onnx_file (local: config/validate.py refuses URLs, trtexec reads a local file)"),
    ("deploy/trtexec.py", "write_build_files", "os.stat"): (1, "the build script gen_trt_engine just wrote"),
    # -- training engine: the results folder
    ("engine/checkpoints.py", "list_checkpoints", "os.path.isdir"): (1, _RESULTS),
    ("engine/checkpoints.py", "list_checkpoints", "os.listdir"): (1, _RESULTS),
    ("engine/checkpoints.py", "_point_latest", "os.path.lexists"): (1, _RESULTS),
    ("engine/checkpoints.py", "_point_latest", "shutil.copyfile"): (1, _RESULTS),
    ("engine/checkpoints.py", "find_resume_checkpoint", "os.path.isfile"): (
        1, "the results folder's latest checkpoint (train.resume_training_checkpoint_path goes through fileio)"),
    ("engine/checkpoint_io.py", "load_checkpoint_file", "os.path.isfile"): (
        1, "Lightning's ckpt_path: what find_resume_checkpoint returned (a local path or fileio's local copy)"),
    ("engine/best_checkpoints.py", "BestCheckpoints.on_validation_end", "os.path.isfile"): (1, _RESULTS),
    ("engine/best_checkpoints.py", "BestCheckpoints.on_validation_end", "os.path.islink"): (1, _RESULTS),
    ("engine/checkpoints.py", "TaoCheckpoint._prune", "os.path.isfile"): (1, _RESULTS),
    ("engine/checkpoints.py", "TaoCheckpoint._prune", "os.path.islink"): (1, _RESULTS),
    ("engine/run_folder.py", "_check_saved_spec", "open"): (1, _RESULTS),
    ("engine/run_folder.py", "_check_saved_spec", "os.path.isfile"): (1, _RESULTS),
    ("engine/run_folder.py", "plan_training", "os.listdir"): (1, _RESULTS),
    ("engine/run_folder.py", "plan_training", "os.path.isdir"): (1, _RESULTS),
    ("engine/checkpoint_io.py", "AtomicCheckpointIO.remove_checkpoint", "os.path.exists"): (1, _RESULTS),
    ("engine/history.py", "read_jsonl", "os.path.exists"): (1, _RESULTS),
    ("engine/history.py", "read_jsonl", "open"): (1, _RESULTS),
    ("engine/history.py", "HistoryCallback.on_train_batch_end", "open"): (1, _RESULTS),
    ("engine/module.py", "GroundingModule.on_validation_epoch_end", "open"): (1, _RESULTS),
    ("engine/status.py", "StatusLogger.write", "open"): (1, _RESULTS),
    ("engine/trainer.py", "wandb_logger", "os.path.exists"): (1, "~/.netrc, wandb's own credentials file"),
    # -- quickstart: the files it generated in its own output folder, and its packaged preset
    ("actions/quickstart.py", "preset_spec", ".read_text"): (1, "the packaged preset (package resource)"),
    ("actions/quickstart.py", "_generate_data", "os.path.exists"): (1, "quickstart's own output folder"),
    ("actions/quickstart.py", "_generate_data", "open"): (1, "quickstart's own output folder"),
    ("actions/quickstart.py", "_spec", "open"): (1, "the label map quickstart generated in its output folder"),
    ("actions/quickstart.py", "_inference_images", "os.path.exists"): (1, "quickstart's own output folder"),
    ("actions/quickstart.py", "_prepare_out", "os.path.isdir"): (2, "quickstart's own --out folder (a local argument)"),
    ("actions/quickstart.py", "_prepare_out", "os.listdir"): (2, "quickstart's own --out folder (a local argument)"),
    ("actions/quickstart.py", "_prepare_out", "os.path.isfile"): (2, "quickstart's marker files in its --out folder"),
    ("actions/quickstart.py", "_prepare_out", "os.path.exists"): (1, "quickstart's own --out folder (a local argument)"),
    ("actions/quickstart.py", "_prepare_out", "shutil.rmtree"): (
        1, "--fresh: only a folder holding quickstart's marker (checked just before)"),
    ("actions/quickstart.py", "_read_json", "open"): (1, "the summaries quickstart wrote in its own folder"),
    ("actions/quickstart.py", "run_quickstart", "open"): (1, "the evaluation results quickstart just wrote"),
    ("actions/folders.py", "_has_files", "os.path.isdir"): (1, _RESULTS),
    ("actions/folders.py", "_has_files", "os.listdir"): (1, _RESULTS),
    # -- command line and spec tooling
    ("config/loader.py", "_read_text", "open"): (
        1, "the -e spec file when it is a local path (a URL goes through the file layer just below)"),
    ("config/artifacts.py", "stale_artifacts", ".read_text"): (1, "the repository's generated schemas/"),
    ("config/compat.py", "load_deviations", ".read_text"): (1, "the packaged deviations.yaml"),
    ("config/compat.py", "check_templates", "glob.glob"): (1, "TAO's packaged templates (a developer tool)"),
    ("config/compat.py", "compare_all", ".read_text"): (1, "TAO's packaged schemas (a developer tool)"),
    ("config/compat.py", "main", ".is_dir"): (1, "TAO's packaged skill folder (a developer tool)"),
    # -- model files by name: hub ids and the "does not exist" message
    ("cli_help.py", "module_tree", "open"): (1, "reads the package's own action sources (help without importing)"),
    ("model/checkpoint/hub.py", "download_hub_model", "os.listdir"): (1, "the Hugging Face hub cache folder"),
    ("model/checkpoint/hub.py", "looks_like_hub_id", "os.path.exists"): (
        1, "only strings of the hub-id form owner/name, never URLs: is it a local path or a hub id?"),
    ("model/checkpoint/hub.py", "looks_like_hub_id", "os.path.isdir"): (
        1, "only strings of the hub-id form owner/name, never URLs: is it a local path or a hub id?"),
    ("model/checkpoint/locate.py", "_holds", ".is_dir"): (1, _MISSING),
    ("model/checkpoint/locate.py", "_holds", "os.scandir"): (1, _MISSING),
    ("model/checkpoint/locate.py", "missing_model_message", "os.path.isdir"): (2, _MISSING),
    ("model/checkpoint/locate.py", "model_files", ".is_dir"): (1, _MISSING),
    ("model/checkpoint/locate.py", "model_files", ".is_file"): (1, _MISSING),
    ("model/checkpoint/locate.py", "model_files", "os.path.isfile"): (1, _MISSING),
    ("model/checkpoint/locate.py", "model_files", "os.scandir"): (1, _MISSING),
    # -- the jobs workspace: our own local folder, process records, package resources
    ("jobs/artifacts.py", "checkpoints", "os.listdir"): (1, _JOB_RESULTS),
    ("jobs/artifacts.py", "json_lines", "open"): (1, _JOB_RESULTS),
    ("jobs/artifacts.py", "latest_checkpoint", "os.path.isfile"): (1, _JOB_RESULTS),
    ("jobs/artifacts.py", "train_folder", "os.path.exists"): (1, _JOB_RESULTS),
    ("jobs/outputs.py", "_evaluate", "os.listdir"): (1, _JOB_RESULTS),
    ("jobs/outputs.py", "_first_existing", "os.path.exists"): (1, _JOB_RESULTS),
    ("jobs/outputs.py", "_inference", "os.path.exists"): (1, _JOB_RESULTS),
    ("jobs/outputs.py", "_train", "os.path.exists"): (1, _JOB_RESULTS),
    ("jobs/outputs.py", "_automl", "os.path.isfile"): (1, _JOB_RESULTS),
    ("jobs/status_file.py", "append_status", "open"): (1, _JOB_RESULTS),
    ("jobs/automl_policy.py", "_automl_enabled", "open"): (1, "the package's own references/skill_info.yaml"),
    ("jobs/automl_policy.py", "decide", "os.path.isfile"): (2, "the package's own schemas/ and references/"),
    ("jobs/logs.py", "_read_bytes", "open"): (1, _WORKSPACE),
    ("jobs/render.py", "page", "os.path.exists"): (1, _WORKSPACE),
    ("jobs/runner.py", "RunnerLock.acquire", "open"): (1, _WORKSPACE),
    ("jobs/processes.py", "spawn", "open"): (1, _WORKSPACE),
    ("jobs/supervisor.py", "supervise", "os.path.exists"): (1, _WORKSPACE),
    ("jobs/supervisor.py", "supervise", "os.path.getsize"): (1, _WORKSPACE),
    ("jobs/supervisor.py", "supervise", "os.path.isfile"): (1, "the AutoML settings file the job saved in its own folder"),
    ("jobs/processes.py", "_stat", "open"): (1, _PROC),
    ("jobs/processes.py", "alive", "os.path.isdir"): (1, _PROC),
    ("jobs/processes.py", "boot_id", "open"): (1, _PROC),
    ("jobs/settings.py", "visible_gpus", "os.listdir"): (1, "the NVIDIA driver's GPU list in /proc, to count GPUs"),
}


def test_no_direct_file_access_on_user_locations():
    found = package_calls()
    unlisted = sorted(f"{mod}: {scope}: {name} (x{n})" for (mod, scope, name), n in found.items()
                      if mod != LAYER and ALLOWED.get((mod, scope, name), (0,))[0] < n)
    stale = sorted(f"{mod}: {scope}: {name}" for (mod, scope, name), (n, _) in ALLOWED.items()
                   if found.get((mod, scope, name), 0) < n)
    assert not unlisted, ("direct file-system calls outside data/fileio.py; use fileio (it takes local paths "
                          "and URLs alike) or list the call in ALLOWED with the reason it never sees a "
                          "user-given location:\n  " + "\n  ".join(unlisted))
    assert not stale, "ALLOWED entries that match no call any more (remove them):\n  " + "\n  ".join(stale)


def test_every_allowance_has_a_reason():
    assert all(count >= 1 and len(why) > 10 for count, why in ALLOWED.values())


#: ``load_ground_truth`` as it was when ``evaluate`` failed on an s3:// ground truth.
_OLD_COCO_RESULTS = '''
def load_ground_truth(gt):
    coco = COCO()
    if isinstance(gt, CocoDataset):
        coco.dataset = coco_dataset_to_dict(gt)
    else:
        try:
            with open(gt, encoding="utf-8") as f:
                coco.dataset = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{gt}: COCO annotation file not found") from None
    return coco
'''


def test_the_scanner_catches_what_it_is_for():
    assert file_access_calls(_OLD_COCO_RESULTS) == [("load_ground_truth", "open")]
    flagged = textwrap.dedent('''
        import glob, os, pathlib, tarfile, torch
        class Reader:
            def load(self, path):
                if os.path.isfile(path) and os.path.exists(path):
                    names = os.listdir(path) + glob.glob(path + "/*")
                    text = pathlib.Path(path).read_text()
                    ok = pathlib.Path(path).exists()
                    tar = tarfile.open(path)
                    return torch.load(path, weights_only=True)
    ''')
    assert [name for _, name in file_access_calls(flagged)] == [
        "os.path.isfile", "os.path.exists", "os.listdir", "glob.glob", ".read_text", ".exists()", "tarfile.open",
        "torch.load"]
    assert {scope for scope, _ in file_access_calls(flagged)} == {"Reader.load"}
    fine = textwrap.dedent('''
        def read(path, fs, source):
            with fileio.open_binary(path) as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
                return fs.exists(path), source.exists("a.png"), fileio.read_json(path), tar
    ''')
    assert file_access_calls(fine) == []


def test_the_package_would_fail_with_the_old_coco_results(monkeypatch):
    """Put the old ``open()`` back into coco_results.py's source: the package check finds it."""
    real = pathlib.Path.read_text

    def patched(self, *args, **kwargs):
        text = real(self, *args, **kwargs)
        return text + _OLD_COCO_RESULTS if self.name == "coco_results.py" else text

    monkeypatch.setattr(pathlib.Path, "read_text", patched)
    found = package_calls()
    assert found[("metrics/coco_results.py", "load_ground_truth", "open")] == 1
    assert ("metrics/coco_results.py", "load_ground_truth", "open") not in ALLOWED
