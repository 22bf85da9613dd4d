"""Batch jobs: deblur every photo of a folder, file by file, into another folder.

Guarantees:
  * Originals are never overwritten: the output folder may not be the input folder, and no result
    may land on an input file (checked for every file before the first one runs).
  * Each result keeps its relative path, name, format, bit depth, EXIF and ICC profile
    (`imageio.write_image`) and appears atomically: a cancelled or failed file leaves nothing.
  * A file that cannot be read, deblurred or written is recorded and the batch goes on. What
    would fail every file (a broken checkpoint, a missing model, an unusable device) fails the
    batch once, before the first photo: the pipeline first deblurs a small blank image.
  * A manifest, ``MANIFEST_NAME`` in the output folder, records every file's outcome (status
    "done" / "failed" / "skipped", error message, warning, seconds of work) and is rewritten
    atomically after each file, so it is always complete up to the last finished file. With
    `skip_existing`, a rerun skips files whose result exists (results only ever exist complete),
    which resumes a cancelled or crashed batch.
  * Decoding the next photo and encoding the previous result run in worker threads while the
    network computes (decoders, encoders and torch all release the GIL).

Folder walk: files whose suffix is in `imageio.SUPPORTED_EXTENSIONS` (any letter case), in sorted
order; hidden files and folders (name starting with ".", which includes the temporary files of
atomic writes) are ignored; with `recursive`, subfolders too, except the output folder when it
lies inside the input folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from deblurstudio.core import imageio
from deblurstudio.core._atomic import atomic_write
from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.devices import resolve_device, resolve_precision
from deblurstudio.core.errors import (
    Cancelled,
    DeblurStudioError,
    ImageReadError,
    ImageWriteError,
)
from deblurstudio.core.modelstore import default_model_id, find_model
from deblurstudio.core.pipeline import DeblurRequest, deblur, run

log = logging.getLogger(__name__)

MANIFEST_NAME = "deblurstudio-batch.json"
MANIFEST_FORMAT = 1
_REHEARSAL_SIDE = 64  # px; side of the blank image deblurred before the first photo

T = TypeVar("T")


@dataclass
class BatchRequest:
    """What to process and how.

    Attributes:
        input_dir: folder of photos (never written to).
        output_dir: folder for the results (created if missing); not the input folder.
        recursive: include subfolders (their relative paths are kept in the output).
        model_id: deblurring model; None = the default (the default reference model with a
            reference).
        reference: optional sharp photo of the same scene, registered onto every file; a file
            whose scene it does not show is deblurred without it (FileRecord.warning says so).
        skip_existing: skip photos whose result already exists (resume).
        device, tile, precision: as in `pipeline.DeblurRequest`.
        quality: JPEG and WebP quality of the results, 1-100; None = each original JPEG's
            (see `imageio.write_image`).
    """

    input_dir: Path
    output_dir: Path
    recursive: bool = False
    model_id: str | None = None
    reference: Path | None = None
    skip_existing: bool = False
    device: str = "auto"
    tile: int = 0
    precision: str = "auto"
    quality: int | None = None


@dataclass(frozen=True)
class FileRecord:
    """The outcome of one photo.

    Attributes:
        source: path relative to the input folder.
        status: "done", "failed" or "skipped".
        output: the result's path relative to the output folder (None when failed).
        error: one-line reason when failed, else None.
        seconds: seconds of work on it (decoding + deblurring + encoding; 0 when skipped).
        warning: what was done differently from the request, else None: the photo's reading
            warnings (a CMYK photo's result is RGB) and the pipeline's (the reference does not
            show this photo's scene, so it was deblurred without it), joined by "; ".
    """

    source: Path
    status: str
    output: Path | None = None
    error: str | None = None
    seconds: float = 0.0
    warning: str | None = None


@dataclass(frozen=True)
class BatchProgress:
    """One step of a batch.

    Two kinds of steps: while a photo is being worked on, `status` is None and `stage` /
    `file_fraction` describe that photo; when a photo's outcome is known (possibly while the next
    one is already being deblurred, as results are written in the background), `status` is its
    outcome and `path`, `index`, `error` are that photo's.

    Attributes:
        path: the photo (absolute path in the input folder).
        index: its position in the sorted list of photos, 0-based.
        total: number of photos found.
        file_fraction: progress on this photo in [0, 1].
        fraction: progress of the whole batch in [0, 1].
        stage: "reading", or the pipeline's stage ("loading model", "deblurring", ...), or the
            outcome.
        eta_seconds: estimated seconds left for the whole batch, None while unknown.
        status: None while working; "done", "failed" or "skipped" for an outcome.
        error: one-line reason for "failed", else None.
        warning: an outcome's FileRecord warning, else None.
    """

    path: Path
    index: int
    total: int
    file_fraction: float
    fraction: float
    stage: str
    eta_seconds: float | None = None
    status: str | None = None
    error: str | None = None
    warning: str | None = None


@dataclass
class BatchSummary:
    """How a finished batch went.

    Attributes:
        input_dir, output_dir: the folders. manifest: path of the manifest file.
        total, done, failed, skipped: photo counts (total = done + failed + skipped).
        records: one FileRecord per photo, in processing order.
        seconds: wall time of the batch.
    """

    input_dir: Path
    output_dir: Path
    manifest: Path
    total: int
    done: int
    failed: int
    skipped: int
    records: list[FileRecord] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Item:
    index: int
    source: Path  # absolute
    relative: Path
    destination: Path  # absolute


@dataclass(frozen=True)
class _Writing:
    """A result being written in the background."""

    item: _Item
    job: Future
    seconds: float  # of work on it so far
    warning: str | None  # reading's and the pipeline's


def find_photos(input_dir: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """Photos in `input_dir` (see the module docstring for the walk), sorted, as absolute paths.

    Args:
        exclude: a folder whose subtree is skipped (the output folder inside the input folder).
    """
    input_dir = Path(input_dir).resolve()
    photos = []
    for folder, subfolders, files in os.walk(input_dir):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if recursive and not name.startswith(".") and (here / name) != exclude
        )
        photos.extend(
            here / name
            for name in sorted(files)
            if not name.startswith(".")
            and Path(name).suffix.lower() in imageio.SUPPORTED_EXTENSIONS
        )
    return photos


def check_model(model_id: str | None, with_reference: bool) -> str:
    """Resolve and check the deblurring model before any photo is decoded.

    Args:
        model_id: a model id, a role ("fast", ...: its default model), or None (the default
            deblurring model, or reference model `with_reference`).

    Returns:
        The model id.

    Raises:
        ModelNotFoundError: not installed. DeblurStudioError: a model that does not deblur (a
            motion model), or one that ignores the reference photo it was given.
    """
    model_id = model_id or default_model_id("reference" if with_reference else "deblur")
    entry = find_model(model_id)
    if entry.task not in ("deblur", "reference"):
        raise DeblurStudioError(f"model '{model_id}' is a {entry.task} model, it does not deblur")
    if with_reference and entry.task != "reference":
        raise DeblurStudioError(
            f"model '{model_id}' does not use a reference photo; choose a reference model "
            f"such as '{default_model_id('reference')}'"
        )
    return entry.id


def batch(
    request: BatchRequest, token: CancelToken
) -> Generator[BatchProgress, None, BatchSummary]:
    """Deblur every photo of `request.input_dir` into `request.output_dir`.

    Yields BatchProgress between tiles and for each photo's outcome; checks `token` between tiles
    and files. Cancelling raises `Cancelled` after the result being written (if any) is complete
    and recorded in the manifest; the photo being deblurred leaves no file.

    Returns:
        The BatchSummary.

    Raises:
        ImageReadError: the input folder or the reference photo cannot be read, or holds no photos.
        ImageWriteError: the output folder is the input folder, cannot be created or written,
            or a result would replace an input file.
        ModelNotFoundError, DeblurStudioError: missing or broken model, unusable device or
            precision.
        Cancelled: the token was cancelled.
    """
    started = time.perf_counter()
    input_dir, output_dir = _check_folders(request)
    items = _plan(request, input_dir, output_dir)
    model_id = check_model(request.model_id, request.reference is not None)
    resolve_precision(request.precision, resolve_device(request.device))
    reference = None if request.reference is None else imageio.read_image(request.reference).pixels
    _make_folder(request.output_dir, output_dir)
    manifest = _Manifest(output_dir / MANIFEST_NAME, input_dir, model_id)
    tracker = _Tracker(len(items))

    def outcome(item: _Item, record: FileRecord) -> BatchProgress:
        manifest.record(record)
        return BatchProgress(
            item.source, item.index, len(items), 1.0, tracker.fraction(), record.status,
            tracker.eta(), record.status, record.error, record.warning,
        )

    work = []
    for item in items:
        if request.skip_existing and item.destination.exists():
            tracker.advance(worked=False)
            yield outcome(item, FileRecord(item.relative, "skipped", item.relative))
        else:
            work.append(item)

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="deblurstudio-batch-io")
    reading = _submit_read(pool, work[0]) if work else None
    writing: _Writing | None = None
    try:
        if work:
            yield BatchProgress(
                work[0].source, work[0].index, len(items), 0.0, tracker.fraction(),
                "loading model",
            )
            _rehearse(request, model_id, token)
        tracker.start_work(len(work))
        for position, item in enumerate(work):
            token.raise_if_cancelled()
            yield BatchProgress(
                item.source, item.index, len(items), 0.0, tracker.fraction(), "reading",
                tracker.eta(),
            )
            try:
                photo, read_seconds = reading.result()
            except Exception as exc:  # noqa: BLE001 — any bad file is recorded, the batch goes on
                photo, read_seconds, error = None, 0.0, _one_line(exc)
            reading = _submit_read(pool, work[position + 1]) if position + 1 < len(work) else None
            if photo is None:
                tracker.advance()
                yield outcome(item, FileRecord(item.relative, "failed", error=error))
                continue

            compute_started = time.perf_counter()
            job = deblur(
                DeblurRequest(
                    image=photo.pixels, model_id=model_id, reference=reference,
                    device=request.device, tile=request.tile, precision=request.precision,
                    maps=False,
                ),
                token,
            )
            deblurred = None
            try:
                while True:
                    try:
                        step = next(job)
                    except StopIteration as stop:
                        deblurred = stop.value
                        break
                    tracker.file_fraction = step.fraction
                    yield BatchProgress(
                        item.source, item.index, len(items), step.fraction, tracker.fraction(),
                        step.stage, tracker.eta(),
                    )
                    if writing is not None and writing.job.done():
                        # Cleared before yielding: a consumer may close the generator there.
                        finished, writing = writing, None
                        yield outcome(finished.item, _written(finished))
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 — recorded; the next photo may well work
                tracker.advance()
                yield outcome(item, FileRecord(
                    item.relative, "failed", error=_one_line(exc),
                    seconds=read_seconds + time.perf_counter() - compute_started,
                ))
                continue
            seconds = read_seconds + time.perf_counter() - compute_started
            tracker.advance()
            if writing is not None:  # one pending result at a time bounds memory
                finished, writing = writing, None
                yield outcome(finished.item, _written(finished))
            result = dataclasses.replace(photo, pixels=deblurred.restored)
            warning = "; ".join(filter(None, [*photo.warnings, deblurred.warning])) or None
            writing = _Writing(
                item, pool.submit(_timed, _write_result, item.destination, result, request.quality),
                seconds, warning,
            )
        if writing is not None:
            finished, writing = writing, None
            yield outcome(finished.item, _written(finished))
    finally:
        # Cancelled, or the consumer closed the generator: finish (never abandon) the result being
        # written so no partial file is left, and record it.
        if reading is not None:
            reading.cancel()
        pool.shutdown(wait=True)
        if writing is not None:
            manifest.record(_written(writing))

    records = manifest.records_of_this_run
    counts = {status: sum(r.status == status for r in records) for status in _STATUSES}
    return BatchSummary(
        input_dir=input_dir, output_dir=output_dir, manifest=manifest.path, total=len(items),
        done=counts["done"], failed=counts["failed"], skipped=counts["skipped"],
        records=records, seconds=time.perf_counter() - started,
    )


_STATUSES = ("done", "failed", "skipped")


def _check_folders(request: BatchRequest) -> tuple[Path, Path]:
    """Resolved input and output folders. Nothing is created yet: a batch refused later (no
    photos, unknown model) must leave no empty output folder behind."""
    input_dir = Path(request.input_dir)
    if not input_dir.exists():
        raise ImageReadError(input_dir, "no such folder")
    if not input_dir.is_dir():
        raise ImageReadError(input_dir, "is a file, not a folder of photos")
    input_dir = input_dir.resolve()
    output_dir = Path(request.output_dir).resolve()
    if output_dir == input_dir:
        raise ImageWriteError(
            request.output_dir,
            "is the input folder; choose another folder for the results (originals are never "
            "overwritten)",
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise ImageWriteError(request.output_dir, "is a file, not a folder")
    return input_dir, output_dir


def _make_folder(requested: Path, output_dir: Path) -> None:
    """Create the output folder (and its parents) once every check has passed."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(
            requested, f"cannot create the folder ({exc.strerror or exc})"
        ) from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise ImageWriteError(requested, "permission denied (folder is not writable)")


def _plan(request: BatchRequest, input_dir: Path, output_dir: Path) -> list[_Item]:
    """Every photo with its destination; refuses destinations that are input files."""
    sources = find_photos(input_dir, request.recursive, exclude=output_dir)
    if not sources:
        where = "this folder or its subfolders" if request.recursive else "this folder"
        kinds = ", ".join(sorted(imageio.SUPPORTED_EXTENSIONS))
        raise ImageReadError(request.input_dir, f"no photos ({kinds}) in {where}")
    items = []
    originals = set(sources)
    for index, source in enumerate(sources):
        relative = source.relative_to(input_dir)
        destination = output_dir / relative
        if destination in originals:
            raise ImageWriteError(
                destination, "the result would replace an original photo; choose an output "
                "folder outside the input folder"
            )
        items.append(_Item(index, source, relative, destination))
    return items


def _rehearse(request: BatchRequest, model_id: str, token: CancelToken) -> None:
    """Deblur a small blank image once before the first photo. This loads the model (it stays
    cached) and turns a broken checkpoint, a missing model or an unusable device into one error
    for the whole batch instead of one failure per photo. Without the reference: a blank image
    matches no reference, and the pipeline would load the default model instead."""
    blank = np.zeros((_REHEARSAL_SIDE, _REHEARSAL_SIDE, 3), np.float32)
    run(deblur(DeblurRequest(
        image=blank, model_id=model_id, device=request.device, tile=request.tile,
        precision=request.precision, maps=False,
    ), token))


def _timed(function: Callable[..., T], *args: Any) -> tuple[T, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def _write_result(destination: Path, result: imageio.Photo, quality: int | None) -> None:
    """Write one result (its subfolder created on demand), keeping the original's format."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(
            destination, f"cannot create its folder ({exc.strerror or exc})"
        ) from None
    imageio.write_image(destination, result, quality=quality)


def _submit_read(pool: ThreadPoolExecutor, item: _Item) -> Future:
    return pool.submit(_timed, imageio.read_image, item.source)


def _written(writing: _Writing) -> FileRecord:
    """The record of a finished (or failing) background write; waits for it."""
    relative = writing.item.relative
    try:
        _, write_seconds = writing.job.result()
    except Exception as exc:  # noqa: BLE001 — a result that cannot be written is a failed file
        return FileRecord(relative, "failed", error=_one_line(exc), seconds=writing.seconds)
    return FileRecord(
        relative, "done", relative, seconds=writing.seconds + write_seconds,
        warning=writing.warning,
    )


def _one_line(exc: BaseException) -> str:
    """A user-facing one-line reason: our errors already name the file and reason."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, DeblurStudioError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Tracker:
    """Overall fraction and ETA. A photo counts as finished once the main loop is through with it
    (its result may still be being written); skipped photos count too, but the ETA extrapolates
    the pace of the photos actually worked on."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.file_fraction = 0.0
        self._finished = 0
        self._work_total = 0
        self._work_finished = 0
        self._work_started = time.perf_counter()

    def start_work(self, count: int) -> None:
        self._work_total = count
        self._work_started = time.perf_counter()

    def advance(self, worked: bool = True) -> None:
        """The main loop is through with a photo (`worked`: it was read or deblurred)."""
        self._finished += 1
        self._work_finished += worked
        self.file_fraction = 0.0

    def fraction(self) -> float:
        if self.total == 0:
            return 1.0
        return min(1.0, (self._finished + self.file_fraction) / self.total)

    def eta(self) -> float | None:
        done = self._work_finished + self.file_fraction
        if done <= 0 or self._work_total == 0:
            return None
        elapsed = time.perf_counter() - self._work_started
        return max(0.0, elapsed * (self._work_total - done) / done)


class _Manifest:
    """The resumable JSON record in the output folder; earlier runs' records of other files are
    kept, so the file describes everything in the output folder."""

    def __init__(self, path: Path, input_dir: Path, model_id: str) -> None:
        self.path = path
        self._header = {"format": MANIFEST_FORMAT, "input_dir": str(input_dir),
                        "model_id": model_id}
        self._files: dict[str, dict[str, Any]] = self._previous_files()
        self.records_of_this_run: list[FileRecord] = []

    def _previous_files(self) -> dict[str, dict[str, Any]]:
        """The files of an earlier run's manifest; {} (with a warning, as it is about to be
        replaced) when the file is not one."""
        if not self.path.exists():
            return {}
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            reason = f"unreadable: {_one_line(exc)}"
        else:
            files = previous.get("files") if isinstance(previous, dict) else None
            if isinstance(files, dict) and previous.get("format") == MANIFEST_FORMAT:
                return files
            reason = f"not a format-{MANIFEST_FORMAT} batch manifest"
        log.warning("%s: %s; starting a new manifest", self.path, reason)
        return {}

    def record(self, record: FileRecord) -> None:
        """Add `record` and rewrite the manifest atomically. A photo skipped because an earlier
        run deblurred it keeps that run's "done" record (with its timing and warning)."""
        self.records_of_this_run.append(record)
        key = record.source.as_posix()
        if record.status == "skipped" and self._files.get(key, {}).get("status") == "done":
            return
        self._files[key] = {
            "status": record.status,
            "output": None if record.output is None else record.output.as_posix(),
            "error": record.error,
            "warning": record.warning,
            "seconds": round(record.seconds, 3),
        }
        document = dict(self._header, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        files=self._files)
        try:
            with atomic_write(self.path, "w") as file:
                json.dump(document, file, indent=1, ensure_ascii=False)
        except OSError as exc:
            raise ImageWriteError(self.path, f"cannot write the batch manifest ({exc})") from exc

