"""The cases of an input folder: `<case_id>_<channel:04d><ending>` files grouped by case, as in imagesTr."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from unetr_pp.io.images import SUPPORTED_ENDINGS, image_ending
from unetr_pp.utilities.errors import UnetrPPError

_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class InputCase:
    """One case to predict: its channel files in channel order (empty if unusable) or why it cannot be read."""

    case_id: str
    images: tuple[Path, ...]
    ending: str
    problem: str | None = None


def list_input_cases(folder: str | Path, num_channels: int) -> list[InputCase]:
    """Cases of `folder` sorted by id; a case with missing/extra channels or mixed endings carries a `problem`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UnetrPPError(f"{folder}: input folder not found")
    grouped: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        ending = image_ending(path)
        if ending is None or not path.is_file():
            continue
        match = _CHANNEL_RE.match(path.name[: -len(ending)])
        if not match:
            raise UnetrPPError(f"{path}: image name must be <case_id>_<channel 0000..>{ending}, e.g. "
                               f"case_001_0000{ending}")
        grouped.setdefault(match["case"], {})[int(match["channel"])] = path
    if not grouped:
        raise UnetrPPError(f"{folder}: no images ({', '.join(SUPPORTED_ENDINGS)}) named <case_id>_0000<ending>")
    cases = []
    for case_id, channels in sorted(grouped.items()):
        files = tuple(channels[c] for c in sorted(channels))
        endings = {image_ending(p) for p in files}
        problem = None
        if sorted(channels) != list(range(num_channels)):
            problem = (f"channels {sorted(channels)} found, the model needs {list(range(num_channels))} "
                       f"({case_id}_0000 .. {case_id}_{num_channels - 1:04d})")
        elif len(endings) > 1:
            problem = f"channels have different file types ({', '.join(sorted(endings))})"
        cases.append(InputCase(case_id, files if problem is None else (), image_ending(files[0]), problem))
    return cases
