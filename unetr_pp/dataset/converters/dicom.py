"""DICOM series headers for validation: geometry of a folder holding one series, from two slice headers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from unetr_pp.dataset.converters.jobs import dicom_series_files
from unetr_pp.dataset.converters.layout import Header
from unetr_pp.utilities.errors import UnetrPPError


def _slice_info(path: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return reader


def read_series_header(folder: Path, problems: list[str]) -> Header | None:
    """Shape, spacing, origin and direction (array order) of the one DICOM series in `folder`.

    Reads only the first and last slice headers: in-plane size/spacing and orientation from the first,
    the slice axis and spacing from the positions of the first and last (as ITK's series reader does).
    """
    try:
        files = dicom_series_files(folder)
        first, last = _slice_info(files[0]), _slice_info(files[-1])
    except UnetrPPError as err:
        problems.append(str(err))
        return None
    except RuntimeError:
        problems.append(f"{folder}: unreadable DICOM slice header")
        return None
    if len(files) < 2:
        problems.append(f"{folder}: DICOM series has {len(files)} slice, expected a volume")
        return None
    cols, rows = first.GetSize()[:2]
    direction = np.asarray(first.GetDirection()).reshape(3, 3)
    step = (np.asarray(last.GetOrigin()) - np.asarray(first.GetOrigin())) / (len(files) - 1)
    z_spacing = float(np.linalg.norm(step))
    if z_spacing > 0:
        direction[:, 2] = step / z_spacing
    spacing = first.GetSpacing()
    return Header(path=folder, shape=(len(files), int(rows), int(cols)), channels=1, four_d=False,
                  spacing=(z_spacing, float(spacing[1]), float(spacing[0])),
                  itk_origin=tuple(float(v) for v in first.GetOrigin()),
                  itk_direction=tuple(float(v) for v in direction.ravel()))
