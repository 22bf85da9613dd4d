"""`deblurstudio-cli`: deblur, analyse and batch-process photos without the GUI.

Exit status (a contract other tools rely on):
  0  success;
  1  the work failed (an unusable checkpoint, out of memory, a batch in which any photo failed,
     an unexpected error);
  2  bad arguments or unusable input, found before any work starts: unreadable photo, mask or
     reference, unknown model, unwritable output, output equal to the input, unavailable device;
  130  interrupted (Ctrl-C); whatever was being written is removed, completed results stay.
Errors are one line on stderr naming the file and the reason; a traceback only with --debug.
A progress bar with ETA goes to stderr when it is a terminal; results are reported on stdout.
Nothing is written when an argument or input is bad.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

# Before torch (imported lazily by the commands) loads OpenMP: idle compute threads sleep instead
# of spinning. When other processes share the cores, spinning threads wait a whole scheduler slice
# for a descheduled partner at every operator; measured on a busy 2-core machine, one 512-px
# forward pass ran 2.4× (BladeNet) to 16× (LCNet) faster, matrix products unchanged.
# An explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from deblurstudio import __version__  # noqa: E402
from deblurstudio.core.errors import (  # noqa: E402
    Cancelled,
    DeblurStudioError,
    ImageReadError,
    ImageWriteError,
    ModelNotFoundError,
)

PROG = "deblurstudio-cli"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
MODEL_HELP = "model id, or a role naming its default model: deblur, fast, reference (see `models`)"
QUALITY_HELP = ("JPEG and WebP quality of the result, 1-100 (default: the original JPEG's, "
                "estimated from its quantisation tables; 95 for other originals)")

T = TypeVar("T")


class BadInput(DeblurStudioError):
    """A bad argument or input found before any work started (exit status 2)."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format=f"{PROG}: %(levelname)s: %(message)s",
    )
    try:
        _say_if_tile_raised(args.tile if "tile" in args else 0)
        return args.command(args)
    except (Cancelled, KeyboardInterrupt):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BadInput, ImageReadError, ImageWriteError, ModelNotFoundError) as exc:
        return _fail(args, exc, EXIT_BAD_INPUT)
    except DeblurStudioError as exc:
        return _fail(args, exc, EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 — a bug: short message, traceback only on request
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"{PROG}: unexpected error: {type(exc).__name__}: {_first_line(exc)} "
                "(run with --debug for the traceback)",
                file=sys.stderr,
            )
        return EXIT_FAILED


def _fail(args: argparse.Namespace, exc: BaseException, status: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"{PROG}: error: {_first_line(exc)}", file=sys.stderr)
    return status


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


# --- arguments -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Remove motion blur from photos, show where and how they are blurred.",
        epilog="Exit status: 0 success, 1 failure, 2 bad arguments or unreadable input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug messages")
    # Also accepted after the command; SUPPRESS keeps the subcommand from resetting it to False.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug messages")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def compute_options(command: argparse.ArgumentParser, precision: bool = True) -> None:
        command.add_argument("--device", choices=DEVICES, default="auto",
                             help="where to compute (default: auto = GPU if there is one)")
        command.add_argument("--tile", type=_non_negative_int, default=0, metavar="N",
                             help="tile side in pixels, at least 128 (default 0: chosen for "
                             "the device)")
        if precision:
            command.add_argument("--precision", choices=PRECISIONS, default="auto",
                                 help="arithmetic precision (default: auto for the device)")

    deblur = commands.add_parser("deblur", parents=[common], help="deblur one photo",
                                 description="Deblur one photo. The result keeps the format, "
                                 "bit depth, EXIF and ICC profile of OUT's type.")
    deblur.add_argument("input", type=Path, metavar="IN", help="the blurred photo")
    deblur.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="where to write the result (never the input itself)")
    deblur.add_argument("--model", metavar="ID", help=MODEL_HELP)
    deblur.add_argument("--mask", type=Path, metavar="M.png",
                        help="deblur only where the mask is white (grey = partly)")
    deblur.add_argument("--reference", type=Path, metavar="REF",
                        help="a sharp photo of the same scene (uses the reference model)")
    deblur.add_argument("--quality", type=_quality, metavar="Q", help=QUALITY_HELP)
    compute_options(deblur)
    deblur.set_defaults(command=_deblur)

    analyse = commands.add_parser(
        "analyse", parents=[common], help="estimate where and how a photo is blurred",
        description="Estimate the blur probability and the motion of every pixel. Without "
        "output options, prints a summary.",
    )
    analyse.add_argument("input", type=Path, metavar="IN", help="the photo")
    analyse.add_argument("--blur-map", type=Path, metavar="OUT.png",
                         help="blur probability as a grey PNG (white = blurred; usable as "
                         "a --mask)")
    analyse.add_argument("--motion-map", type=Path, metavar="OUT.npy",
                         help="motion as float32 H×W×2 (dx, dy) in pixels, NumPy .npy")
    analyse.add_argument("--motion-vis", type=Path, metavar="OUT.png",
                         help="picture of the motion: colour = orientation, saturation = "
                         "length, line glyphs, key with the scale")
    compute_options(analyse, precision=False)
    analyse.set_defaults(command=_analyse)

    batch = commands.add_parser(
        "batch", parents=[common], help="deblur every photo of a folder",
        description="Deblur every photo of IN_DIR into OUT_DIR (same names and subfolders). "
        "Exits 1 when any photo failed; the manifest in OUT_DIR lists every outcome.",
    )
    batch.add_argument("input_dir", type=Path, metavar="IN_DIR")
    batch.add_argument("output_dir", type=Path, metavar="OUT_DIR")
    batch.add_argument("--recursive", action="store_true", help="include subfolders")
    batch.add_argument("--model", metavar="ID", help=MODEL_HELP)
    batch.add_argument("--reference", type=Path, metavar="REF",
                       help="a sharp photo of the same scene, used for every photo")
    batch.add_argument("--skip-existing", action="store_true",
                       help="skip photos whose result exists (resume an interrupted batch)")
    batch.add_argument("--quality", type=_quality, metavar="Q", help=QUALITY_HELP)
    compute_options(batch)
    batch.set_defaults(command=_batch)

    models = commands.add_parser("models", parents=[common], help="list installed models")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(command=_models)

    bench = commands.add_parser(
        "bench", parents=[common], help="measure throughput",
        description="Deblur a synthetic photo and report megapixels per second, peak memory "
        "and the arithmetic rate next to this machine's matrix-multiply rate.",
    )
    bench.add_argument("--model", metavar="ID",
                       help="model id or role (default: every installed deblurring model)")
    bench.add_argument("--size", type=_positive_float, default=2.0, metavar="MP",
                       help="photo size in megapixels (default 2)")
    compute_options(bench)
    bench.set_defaults(command=_bench)
    return parser


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1 to 100, not {value}")
    return value


def _say_if_tile_raised(tile: int) -> None:
    """Warn that a --tile below the smallest tile the pipeline runs is raised to it."""
    if tile == 0:
        return
    from deblurstudio.core.tiling import MIN_TILE

    if tile < MIN_TILE:
        print(f"{PROG}: warning: --tile {tile} is below the smallest tile, {MIN_TILE} px; "
              f"using {MIN_TILE}", file=sys.stderr)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


# --- commands --------------------------------------------------------------------------------


def _deblur(args: argparse.Namespace) -> int:
    from deblurstudio.core import imageio
    from deblurstudio.core.batch import check_model
    from deblurstudio.core.pipeline import DeblurRequest, deblur

    with _checking_arguments():
        _check_output(args.output, args.input, imageio.SUPPORTED_EXTENSIONS)
        model_id = check_model(args.model, with_reference=args.reference is not None)
        _check_device(args.device, args.precision)
        photo = imageio.read_image(args.input)
        height, width = photo.pixels.shape[:2]
        mask = None if args.mask is None else imageio.read_mask(args.mask, size=(width, height))
        reference = None if args.reference is None else imageio.read_image(args.reference).pixels
    for warning in photo.warnings:
        print(f"{PROG}: warning: {args.input}: {warning}", file=sys.stderr)

    request = DeblurRequest(
        image=photo.pixels, model_id=model_id, mask=mask, reference=reference,
        device=args.device, tile=args.tile, precision=args.precision, maps=False,
    )
    result = _drive(deblur(request, _token()), args.input.name)
    if result.warning is not None:
        print(f"{PROG}: warning: {args.reference}: {result.warning}", file=sys.stderr)
    imageio.write_image(
        args.output, dataclasses.replace(photo, pixels=result.restored), quality=args.quality
    )
    print(f"{args.output}: deblurred with {result.model_id} on {result.device} "
          f"in {result.seconds:.1f} s")
    return EXIT_OK


def _analyse(args: argparse.Namespace) -> int:
    import numpy as np

    from deblurstudio.core import imageio, visualise
    from deblurstudio.core._atomic import atomic_write
    from deblurstudio.core.modelstore import default_model_id
    from deblurstudio.core.pipeline import analyse

    with _checking_arguments():
        if args.blur_map is not None:
            _check_output(args.blur_map, args.input, {".png"})
        if args.motion_map is not None:
            _check_output(args.motion_map, args.input, {".npy"})
        if args.motion_vis is not None:
            _check_output(args.motion_vis, args.input, imageio.SUPPORTED_EXTENSIONS)
        if args.motion_map is not None or args.motion_vis is not None:
            default_model_id("motion")  # a motion output needs a motion model
        _check_device(args.device, "auto")
        photo = imageio.read_image(args.input)

    result = _drive(
        analyse(photo.pixels, _token(), device=args.device, tile=args.tile), args.input.name
    )
    motion = result.motion_map
    written = []
    if args.blur_map is not None:
        imageio.write_mask(args.blur_map, result.blur_probability)
        written.append(args.blur_map)
    if args.motion_map is not None:
        try:
            with atomic_write(args.motion_map) as file:
                np.save(file, motion.astype(np.float32, copy=False))
        except OSError as exc:
            raise ImageWriteError(args.motion_map, exc.strerror or str(exc)) from None
        written.append(args.motion_map)
    if args.motion_vis is not None:
        picture = visualise.render_motion(motion).astype(np.float32) / np.float32(255.0)
        imageio.write_image(args.motion_vis, imageio.Photo(pixels=picture))
        written.append(args.motion_vis)

    blurred = float(np.mean(result.blur_probability >= 0.5))
    summary = f"{args.input}: {100 * blurred:.1f} % of the photo looks blurred"
    if motion is not None:
        summary += f"; motion up to {visualise.longest_motion(motion):.1f} px"
    print(summary)
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _batch(args: argparse.Namespace) -> int:
    from deblurstudio.core.batch import BatchRequest, batch

    request = BatchRequest(
        input_dir=args.input_dir, output_dir=args.output_dir, recursive=args.recursive,
        model_id=args.model, reference=args.reference, skip_existing=args.skip_existing,
        device=args.device, tile=args.tile, precision=args.precision, quality=args.quality,
    )
    job = batch(request, _token())
    # Everything batch() checks before the first photo (folders, model, device, reference) is a
    # bad argument; it has run once the first progress step arrives.
    with _checking_arguments():
        first = next(job)
    bar = _ProgressBar(sys.stderr)
    working_on = [""]  # the bar names the photo being deblurred, not the one just written

    def on_step(step) -> None:
        if step.status == "failed":
            bar.message(f"{PROG}: failed: {step.error}")
        elif step.warning is not None:
            bar.message(f"{PROG}: warning: {step.path.name}: {step.warning}")
        if step.status is None:
            working_on[0] = f"{step.index + 1}/{step.total} {step.path.name}"
        bar.update(step.fraction, working_on[0], step.eta_seconds)

    on_step(first)
    summary = _drive(job, "", bar=bar, on_step=on_step)
    print(
        f"{summary.total} photos: {summary.done} deblurred, {summary.failed} failed, "
        f"{summary.skipped} skipped in {summary.seconds:.1f} s; results in {summary.output_dir} "
        f"(manifest {summary.manifest.name})"
    )
    return EXIT_FAILED if summary.failed else EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from deblurstudio.core.modelstore import (
        ROLES,
        card_fields,
        default_model_id,
        list_models,
        model_dirs,
    )

    entries = list_models()
    defaults = {}
    for role in ROLES:
        try:
            defaults.setdefault(default_model_id(role), []).append(role)
        except ModelNotFoundError:
            pass
    if args.json:
        document = [
            {"id": e.id, "task": e.task, "arch": e.arch, "title": e.title,
             "description": e.description, "path": str(e.path),
             "default_for": defaults.get(e.id, []), "card": e.card}
            for e in entries
        ]
        print(json.dumps(document, indent=1, ensure_ascii=False))
        return EXIT_OK
    if not entries:
        folders = ", ".join(str(folder) for folder in model_dirs())
        print(f"No models installed. Looked in: {folders}")
        return EXIT_OK
    for entry in entries:
        roles = defaults.get(entry.id)
        print(f"{entry.id}  [{entry.task}, {entry.arch}]"
              + (f"  default for: {', '.join(roles)}" if roles else ""))
        print(f"    {entry.title}" + (f" — {entry.description}" if entry.description else ""))
        for label, text in card_fields(entry.card):
            print(f"    {label}: {text}")
        print(f"    file: {entry.path}")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from deblurstudio.core import bench
    from deblurstudio.core.batch import check_model
    from deblurstudio.core.modelstore import list_models

    with _checking_arguments():
        _check_device(args.device, args.precision)
        if args.model is not None:
            model_ids = [check_model(args.model, with_reference=False)]
        else:
            model_ids = [e.id for e in list_models() if e.task in ("deblur", "reference")]
            if not model_ids:
                raise BadInput("no deblurring models installed (see `deblurstudio-cli models`)")
    results = []
    for model_id in model_ids:
        if sys.stderr.isatty():
            print(f"benchmarking {model_id}…", file=sys.stderr)
        results.append(bench.bench_model(
            model_id, device=args.device, megapixels=args.size, tile=args.tile,
            precision=args.precision,
        ))
    print(bench.format_table(results))
    if (warning := bench.load_warning()) is not None:
        print(warning, file=sys.stderr)
    return EXIT_OK


# --- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _checking_arguments() -> Iterator[None]:
    """Within it, any DeblurStudioError is a bad argument or input (exit status 2)."""
    try:
        yield
    except BadInput:
        raise
    except DeblurStudioError as exc:
        raise BadInput(str(exc)) from exc


def _check_output(output: Path, source: Path, extensions) -> None:
    """Refuse an output that is the input, has an unknown type, or cannot be created."""
    if output.resolve() == source.resolve() or (
        output.exists() and source.exists() and os.path.samefile(output, source)
    ):
        raise ImageWriteError(output, "is the input file; choose another name for the result")
    if output.is_dir():  # before the type: a folder's name has no suffix to complain about
        raise ImageWriteError(output, "is a folder; give the result's file name")
    if output.suffix.lower() not in extensions:
        raise ImageWriteError(
            output, f"unsupported file type {output.suffix or '(none)'!r}; use "
            f"{', '.join(sorted(extensions))}"
        )
    folder = output.parent
    if not folder.is_dir():
        raise ImageWriteError(output, f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ImageWriteError(output, f"folder {folder} is not writable")


def _check_device(device: str, precision: str) -> None:
    from deblurstudio.core.devices import resolve_device, resolve_precision

    resolve_precision(precision, resolve_device(device))


def _token():
    from deblurstudio.core.cancel import CancelToken

    return CancelToken()  # the CLI cancels by Ctrl-C (KeyboardInterrupt), which ends the job


def _drive(
    job: Generator[Any, None, T],
    label: str,
    *,
    bar: _ProgressBar | None = None,
    on_step: Callable[[Any], None] | None = None,
) -> T:
    """Run a job generator to its result, showing its progress on a terminal."""
    bar = bar or _ProgressBar(sys.stderr)
    try:
        while True:
            try:
                step = next(job)
            except StopIteration as stop:
                return stop.value
            if on_step is not None:
                on_step(step)
            else:
                bar.update(step.fraction, f"{label} {step.stage}", step.eta_seconds)
    finally:
        job.close()  # on Ctrl-C: let the job finish what it is writing
        bar.close()


class _ProgressBar:
    """A one-line progress bar with ETA on a terminal; silent when the stream is not a tty."""

    WIDTH = 28
    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = False

    def update(self, fraction: float, label: str, eta_seconds: float | None = None) -> None:
        if not self._enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.INTERVAL and fraction < 1.0:
            return
        self._last_draw = now
        if eta_seconds is None and fraction > 0:
            eta_seconds = (now - self._started) * (1 - fraction) / fraction
        filled = round(self.WIDTH * min(max(fraction, 0.0), 1.0))
        eta = "" if eta_seconds is None else f" ETA {_clock(eta_seconds)}"
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * fraction:3.0f}%{eta} {label}"
        self._stream.write("\r\x1b[2K" + line[:200])
        self._stream.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """A line of its own above the bar (or just the line when there is no bar)."""
        if self._drawn:
            self._stream.write("\r\x1b[2K")
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last_draw = 0.0

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


if __name__ == "__main__":
    sys.exit(main())
